"""OpenAI chat `messages` (raw JSON from a client) → a typed `ChatTurn`.

What a turn needs: the latest user message's text, the images attached to it (decoded from
base64 to bytes, never to pixels), and — when none is attached — the latest image earlier in
the conversation, so "now make it night" edits the last picture. Plus a short, bounded summary
of the earlier messages for the LLM router.

Where images are found, in every message alike:
- content parts `{"type": "image_url", "image_url": {"url": …}}` (or `"image_url": "…"`), and
  `{"type": "input_image", "image_url": "…"}`;
- markdown images `![…](data:image/…;base64,…)` inside text (how our replies carry them);
- a `message.images` list `[{"type": "image_url", "image_url": {"url": …}}]` (LiteLLM's
  convention; our replies carry it too). An `images` entry that repeats an image of the
  content counts once.

Decided:
- Only data URLs (`data:image/<any>;base64,…`). A remote URL (http/https, or a client's own
  relative link) is refused with a sentence, never fetched. An earlier remote image is refused
  only when it is the one the turn would use (the latest image), so it cannot silently vanish
  and turn an edit into a generation.
- Base64 is bounded before decoding: the encoded length is checked against the byte limit
  first. Whitespace inside the payload and missing `=` padding are tolerated; the URL-safe
  alphabet too.
- Text is CLEANED, not refused: a lone UTF-16 surrogate (valid JSON, `"\\ud800"`) becomes
  U+FFFD, control characters other than tab and newline are dropped, CRLF becomes LF.
  `ChatTurn.text_cleaned` says it happened. A stray byte in pasted text should not cost the
  user a turn; a lone surrogate would otherwise crash the first UTF-8 encode downstream.
- Unknown content part types in the latest user message are refused (an attached file we do
  not understand must not be dropped silently); in earlier messages they are ignored.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

MAX_ATTACHED_IMAGES = 3
MAX_TEXT_CHARS = 8000
HISTORY_MESSAGES = 8  # earlier user/assistant messages kept for the LLM router
HISTORY_CHARS = 400  # per message, in that summary

NO_URLS = "The studio fetches nothing from URLs: attach the image as a data URL."

# Roles we read; "developer" is OpenAI's newer name for "system", "function" the legacy "tool".
SPEAKER_ROLES = ("user", "assistant")
SILENT_ROLES = ("system", "developer", "tool", "function")

HistoryRole = Literal["user", "assistant"]

MAX_ALT_CHARS = 500  # a markdown image's alt text, when looking for its end
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_WHITESPACE = (b"\n", b"\r", b" ", b"\t", b"\f", b"\v")
_IMAGE_MIME = re.compile(r"image/[a-z0-9][a-z0-9.+-]{0,63}")


class ChatInputError(ValueError):
    """The conversation cannot be used. `message` is a sentence for the person, `param`
    names the JSON location (`messages[2].content[1].image_url`), `code` is the API code:
    `invalid_input` (400) or `file_too_large` (413)."""

    def __init__(self, message: str, param: str = "messages", code: str = "invalid_input"):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


@dataclass(frozen=True)
class ChatImage:
    """An image from the conversation, as the bytes that were sent (not decoded to pixels).

    `message_index` is its message's position in `messages` and `image_index` its position
    among that message's images, so a client can point at it to branch from it."""

    data: bytes
    mime: str
    message_index: int
    image_index: int
    role: str


@dataclass(frozen=True)
class HistoryEntry:
    """An earlier message, summarised for the router: its text (shortened, images replaced by
    `[image]`) and how many images it carried."""

    role: HistoryRole
    text: str
    images: int


@dataclass(frozen=True)
class ChatTurn:
    text: str  # the latest user message's text, cleaned, markdown images removed
    attached: tuple[ChatImage, ...]  # images on the latest user message (0–3)
    context_image: ChatImage | None  # the latest earlier image; None when some are attached
    history: tuple[HistoryEntry, ...]  # earlier user/assistant messages, oldest first
    message_index: int  # the latest user message's position in `messages`
    text_cleaned: bool = False  # control characters or lone surrogates were removed

    @property
    def source_image(self) -> ChatImage | None:
        """The image an edit-like operation works on: the first attached, else the latest."""
        return self.attached[0] if self.attached else self.context_image

    @property
    def has_image(self) -> bool:
        return self.source_image is not None


@dataclass(frozen=True)
class _ImageRef:
    """Where an image's URL is: `source[start:end]`. Not sliced until it is used, so the
    conversation's older data URLs (megabytes each) are never copied."""

    source: str
    start: int
    end: int
    param: str

    @classmethod
    def whole(cls, url: str, param: str) -> _ImageRef:
        return cls(url, 0, len(url), param)

    @property
    def url(self) -> str:
        return self.source[self.start : self.end]

    def same_url(self, url: str) -> bool:
        return self.end - self.start == len(url) and self.source.startswith(url, self.start)


@dataclass(frozen=True)
class _Message:
    index: int
    role: str
    text: str
    refs: tuple[_ImageRef, ...]
    cleaned: bool


def parse_messages(
    messages: object,
    *,
    max_image_bytes: int,
    max_images: int = MAX_ATTACHED_IMAGES,
    max_text_chars: int = MAX_TEXT_CHARS,
) -> ChatTurn:
    """Read a chat request's `messages`. Raises `ChatInputError` with a sentence."""
    if not isinstance(messages, list):
        raise ChatInputError("`messages` must be a list of message objects.", "messages")
    latest_user = _latest_user_index(messages)
    parsed: list[_Message] = []
    for index, raw in enumerate(messages[: latest_user + 1]):
        parsed.append(_read_message(raw, index, strict=index == latest_user))
    latest = parsed[-1]
    if len(latest.text) > max_text_chars:
        raise ChatInputError(
            f"The message is too long ({len(latest.text)} characters; at most "
            f"{max_text_chars}).",
            f"messages[{latest_user}].content",
        )
    if len(latest.refs) > max_images:
        raise ChatInputError(
            f"Attach at most {max_images} images to a message (this one has "
            f"{len(latest.refs)}).",
            f"messages[{latest_user}].content",
        )
    attached = tuple(
        _decode_image(ref, max_image_bytes, latest_user, i, "user")
        for i, ref in enumerate(latest.refs)
    )
    if not latest.text and not attached:
        raise ChatInputError(
            "The latest user message is empty: say what to draw or change.",
            f"messages[{latest_user}].content",
        )
    context = None if attached else _latest_earlier_image(parsed[:-1], max_image_bytes)
    return ChatTurn(
        text=latest.text,
        attached=attached,
        context_image=context,
        history=_history(parsed[:-1]),
        message_index=latest_user,
        text_cleaned=latest.cleaned,
    )


def clean_text(text: str) -> tuple[str, bool]:
    """(text safe to encode and show, whether anything was changed)."""
    cleaned = text.replace("\r\n", "\n").replace("\r", "\n")
    cleaned = _SURROGATE.sub("\ufffd", cleaned)
    cleaned = _CONTROL.sub("", cleaned)
    return cleaned, cleaned != text.replace("\r\n", "\n").replace("\r", "\n")


def decode_data_url(url: str, max_bytes: int, param: str) -> tuple[str, bytes]:
    """`data:image/<type>[;…];base64,<payload>` → (mime, bytes), bounded before decoding."""
    if url[:5].lower() != "data:":
        raise ChatInputError(f"The image at {param} is a link, not a data URL. {NO_URLS}", param)
    comma = url.find(",", 5, 300)
    if comma < 0:
        raise ChatInputError(f"The image at {param} is not a valid data URL.", param)
    header = [part.strip().lower() for part in url[5:comma].split(";")]
    mime = header[0]
    if not _IMAGE_MIME.fullmatch(mime):
        shown = mime or "no type"
        raise ChatInputError(
            f"The data URL at {param} is {shown}, not an image: send PNG, JPEG or WebP.", param
        )
    if header[-1] != "base64":
        raise ChatInputError(f"The image at {param} must be base64 (`;base64,`).", param)
    return mime, decode_base64(url[comma + 1 :], max_bytes, param)


def decode_base64(payload: str, max_bytes: int, param: str) -> bytes:
    """Decode base64, refusing before any work a payload that cannot fit in `max_bytes`.
    C speed throughout (bytes searches, translate, binascii's strict mode): no regex or
    per-character Python runs over megabytes."""
    limit = 4 * ((max_bytes + 2) // 3)
    too_large = ChatInputError(
        f"The image at {param} is over the {_size_text(max_bytes)} limit.", param,
        "file_too_large",
    )
    invalid = ChatInputError(f"The image at {param} is not valid base64.", param)
    if len(payload) > limit + limit // 8 + 64:  # room for line breaks only
        raise too_large
    try:
        compact = payload.encode("ascii")
    except UnicodeEncodeError as exc:
        raise invalid from exc
    if any(space in compact for space in _WHITESPACE):  # line-wrapped base64
        compact = compact.translate(None, b"".join(_WHITESPACE))
    if len(compact) > limit:
        raise too_large
    if b"-" in compact or b"_" in compact:
        compact = compact.translate(_URLSAFE_TO_STANDARD)
    if len(compact) % 4 == 1:
        raise invalid
    compact += b"=" * (-len(compact) % 4)
    try:
        data = binascii.a2b_base64(compact, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise invalid from exc
    if len(data) > max_bytes:
        raise too_large
    if not data:
        raise ChatInputError(f"The image at {param} is empty.", param)
    return data


# --- reading messages ---------------------------------------------------------------------


def _latest_user_index(messages: Sequence[object]) -> int:
    for index in range(len(messages) - 1, -1, -1):
        raw = messages[index]
        if isinstance(raw, Mapping) and raw.get("role") == "user":
            return index
    raise ChatInputError(
        "The conversation has no user message: add one with role \"user\".", "messages"
    )


def _read_message(raw: object, index: int, *, strict: bool) -> _Message:
    where = f"messages[{index}]"
    if not isinstance(raw, Mapping):
        raise ChatInputError(f"{where} must be an object with a role and content.", where)
    role = raw.get("role")
    if not isinstance(role, str) or role not in SPEAKER_ROLES + SILENT_ROLES:
        raise ChatInputError(
            f"{where}.role must be one of system, user, assistant or tool.", f"{where}.role"
        )
    if role in SILENT_ROLES:
        return _Message(index, role, "", (), False)
    texts: list[str] = []
    refs: list[_ImageRef] = []
    content = raw.get("content")
    if isinstance(content, str):
        texts.append(_take_markdown_images(content, f"{where}.content", refs))
    elif isinstance(content, list):
        for part_index, part in enumerate(content):
            _read_part(part, f"{where}.content[{part_index}]", texts, refs, strict=strict)
    elif content is not None:
        raise ChatInputError(
            f"{where}.content must be text or a list of content parts.", f"{where}.content"
        )
    images = raw.get("images")
    if isinstance(images, list):
        in_content = list(refs)
        for image_index, item in enumerate(images):
            url = _image_url_of(item)
            # our replies carry both (compared in place: length, then memcmp)
            if url is not None and not any(ref.same_url(url) for ref in in_content):
                refs.append(_ImageRef.whole(url, f"{where}.images[{image_index}]"))
    text, cleaned = clean_text("\n".join(t for t in texts if t))
    return _Message(index, role, text.strip(), tuple(refs), cleaned)


def _read_part(
    part: object, where: str, texts: list[str], refs: list[_ImageRef], *, strict: bool
) -> None:
    if isinstance(part, str):  # some clients send bare strings in the list
        texts.append(_take_markdown_images(part, where, refs))
        return
    if not isinstance(part, Mapping):
        if strict:
            raise ChatInputError(f"{where} must be a content part object.", where)
        return
    kind = part.get("type")
    if kind in ("text", "input_text"):
        text = part.get("text")
        if isinstance(text, str):
            texts.append(_take_markdown_images(text, f"{where}.text", refs))
        elif strict:
            raise ChatInputError(f"{where}.text must be text.", f"{where}.text")
    elif kind in ("image_url", "input_image"):
        url = _image_url_of(part)
        if url is None:
            if strict:
                raise ChatInputError(
                    f"{where} has no image URL: send {{\"url\": \"data:image/png;base64,…\"}}.",
                    f"{where}.image_url",
                )
            return
        refs.append(_ImageRef.whole(url, f"{where}.image_url"))
    elif kind == "refusal":
        return
    elif strict:
        raise ChatInputError(
            f"Content part type {str(kind)[:40]!r} at {where} is not supported: send text "
            "parts and images as image_url parts with a data URL.",
            f"{where}.type",
        )


def _image_url_of(item: object) -> str | None:
    """The URL in `{"image_url": {"url": …}}`, `{"image_url": "…"}` or `{"url": …}`."""
    if not isinstance(item, Mapping):
        return None
    value = item.get("image_url", item.get("url"))
    if isinstance(value, Mapping):
        value = value.get("url")
    return value.strip() if isinstance(value, str) and value.strip() else None


def _take_markdown_images(text: str, where: str, refs: list[_ImageRef]) -> str:
    """Collect `![alt](url "title")` images into `refs`; return the text without them.
    Plain `str.find`, not a regex: a data URL is megabytes and every message is scanned."""
    kept: list[str] = []
    position = 0
    while (start := text.find("![", position)) >= 0:
        close = text.find("](", start + 2, start + 2 + MAX_ALT_CHARS)
        alt = text[start + 2 : close] if close >= 0 else "]"
        end = text.find(")", close + 2) if not ("]" in alt or "\n" in alt) else -1
        url_start, url_end = _url_span(text, close + 2, end) if end >= 0 else (0, 0)
        if url_start >= url_end:  # not an image (or unclosed): keep the characters, go on
            kept.append(text[position : start + 2])
            position = start + 2
            continue
        refs.append(_ImageRef(text, url_start, url_end, where))
        kept.append(text[position:start])
        position = end + 1
    kept.append(text[position:])
    return "".join(kept)


def _url_span(text: str, start: int, end: int) -> tuple[int, int]:
    """The URL inside `(  <url> "title" )` between start and end, without copying it."""
    while start < end and text[start] in " \t<":
        start += 1
    title = text.find(" ", start, end)
    if title >= 0:
        end = title
    while end > start and text[end - 1] in " \t>":
        end -= 1
    return start, end


def _decode_image(
    ref: _ImageRef, max_bytes: int, message_index: int, image_index: int, role: str
) -> ChatImage:
    if re.match(r"(?i)https?://", ref.url):
        raise ChatInputError(f"{NO_URLS} (found a link at {ref.param})", ref.param)
    mime, data = decode_data_url(ref.url, max_bytes, ref.param)
    return ChatImage(data, mime, message_index, image_index, role)


def _latest_earlier_image(earlier: list[_Message], max_bytes: int) -> ChatImage | None:
    for message in reversed(earlier):
        if message.refs:
            image_index = len(message.refs) - 1
            return _decode_image(
                message.refs[image_index], max_bytes, message.index, image_index, message.role
            )
    return None


def _history(earlier: list[_Message]) -> tuple[HistoryEntry, ...]:
    entries = []
    for message in earlier:
        if message.role not in SPEAKER_ROLES:
            continue
        role: HistoryRole = "user" if message.role == "user" else "assistant"
        text = message.text
        if len(text) > HISTORY_CHARS:
            text = text[: HISTORY_CHARS - 1] + "…"
        entries.append(HistoryEntry(role, text, len(message.refs)))
    return tuple(entries[-HISTORY_MESSAGES:])


def _size_text(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):g} MB"
    return f"{size / 1024:g} KB" if size >= 1024 else f"{size} bytes"

"""The Chat tab's conversation, as Gradio hands it back, → the chat core's `ChatTurn`.

Gradio's Chatbot gives earlier pictures back in many shapes, depending on who put them there
and whether they went through the browser: `{"type": "file", "file": {...}}` (its own
normalised form), a FileData dict `{"path": …, "url": …}`, a `FileData` / `FileMessage`
object, an image component (`{"type": "component", "component": "image", "value": {...}}`,
a `ComponentMessage`, or a `gr.Image` instance), a `pathlib.Path`, a `(path, alt)` tuple
(Gradio 4's tuples), a bare path string, or only a `/gradio_api/file=…` URL. `picture_of`
reads them all. A part that is a picture but cannot be read (no path, the file gone, a path
outside Gradio's cache) is `Lost`, never skipped: when the turn would work on it, the turn is
refused with a sentence (`LostImage`) — it must not quietly become a generation.

Branching: the next turn works on the picture the person clicked (`branch`, a message index),
else on the latest picture in the conversation; an attached picture always wins (the core's
`ChatTurn.source_image`).
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import gradio as gr
from gradio.components.chatbot import ComponentMessage, FileMessage
from gradio.data_classes import FileData
from gradio.utils import get_upload_folder

from backend.chat import ChatImage, ChatTurn, HistoryEntry
from backend.chat.parse import HISTORY_CHARS, HISTORY_MESSAGES, MAX_ATTACHED_IMAGES, clean_text

# A reply's file name: banana-item-<library item id>.png (the library's own files are
# banana-<mode>-<seed>.png: not an item id).
ITEM_PREFIX = "banana-item-"
FILE_ROUTE = "/file="            # Gradio's file URLs: /gradio_api/file=<path>
NOT_PICTURES = frozenset({".txt", ".md", ".json", ".pdf", ".csv", ".mp3", ".wav", ".mp4",
                          ".webm", ".mov", ".zip", ".html"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif",
                            ".tiff", ".avif", ".heic"})


class LostImage(Exception):
    """The picture a turn would work on cannot be read. `message` is a sentence."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Picture:
    """A picture of the conversation, found on disk."""

    path: str
    message_index: int
    image_index: int          # among its message's pictures
    role: str
    item_id: str | None       # the library item it is (our replies name it), else None


@dataclass(frozen=True)
class Lost:
    """A part that is a picture but cannot be read, and why."""

    message_index: int
    why: str


@dataclass(frozen=True)
class _File:
    """What a part says about its file, before it is looked for."""

    path: str | None
    url: str | None
    name: str | None        # orig_name
    mime: str | None


# -- one content part ---------------------------------------------------------------------------
def _file_of(part: object) -> _File | None:
    """The file a content part names (None: the part is text, or nothing)."""
    if isinstance(part, FileMessage):
        return _file_of(part.file)
    if isinstance(part, FileData):
        return _File(part.path, part.url, part.orig_name, part.mime_type)
    if isinstance(part, ComponentMessage):
        return _component_file(part.component, part.value)
    if isinstance(part, gr.components.Component):
        return _component_file(type(part).__name__.lower(), getattr(part, "value", None))
    if isinstance(part, Path):
        return _File(str(part), None, None, None)
    if isinstance(part, (tuple, list)):
        return _file_of(part[0]) if part else None
    if isinstance(part, str):
        # Text, unless it is exactly a path to a picture (Gradio 4 let a bare path be a file).
        text = part.strip()
        if os.path.isabs(text) and "\n" not in text and Path(text).suffix.lower() in \
                IMAGE_SUFFIXES:
            return _File(text, None, None, None)
        return None
    if isinstance(part, Mapping):
        kind = part.get("type")
        if kind == "text" or ("text" in part and "path" not in part and "file" not in part):
            return None
        if kind == "component" or "component" in part:
            return _component_file(str(part.get("component", "")), part.get("value"))
        if "file" in part:
            return _file_of(part["file"]) or _File(None, None, None, None)
        if "path" in part or "url" in part:
            return _File(_str(part.get("path")), _str(part.get("url")),
                         _str(part.get("orig_name")), _str(part.get("mime_type")))
    return None


def _component_file(component: str, value: object) -> _File | None:
    if component not in ("image", "file", "gallery"):
        return None
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return _File(None, None, None, None)       # an image component whose file is gone
    found = _file_of(value)
    if found is None and isinstance(value, str):
        return _File(value, None, None, None)
    return found or _File(None, None, None, None)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _is_picture(file: _File) -> bool:
    if file.mime:
        return file.mime.startswith("image/")
    for name in (file.path, file.name, file.url):
        if name and Path(name.split("?", 1)[0]).suffix.lower() in NOT_PICTURES:
            return False
    return True


def _where(file: _File) -> str | None:
    """The file's path on this machine: its path, else the one its Gradio URL names."""
    if file.path and not file.path.startswith(("http://", "https://", "data:")):
        return file.path
    for url in (file.url, file.path):
        if url and FILE_ROUTE in url:
            return unquote(url.split(FILE_ROUTE, 1)[1].split("?", 1)[0])
    return None


def _inside(path: str, roots: Sequence[str]) -> bool:
    real = os.path.realpath(path)
    return any(real == r or real.startswith(r.rstrip(os.sep) + os.sep)
               for r in (os.path.realpath(root) for root in roots))


def picture_of(part: object, message_index: int, image_index: int, role: str,
               roots: Sequence[str]) -> Picture | Lost | None:
    """One content part → the picture it is (`Lost` when it is one that cannot be read;
    None when it is text or a file that is no picture)."""
    file = _file_of(part)
    if file is None or not _is_picture(file):
        return None
    path = _where(file)
    if path is None:
        return Lost(message_index, "it has no file on the studio")
    if not _inside(path, roots):
        return Lost(message_index, "its file is outside the studio's upload folder")
    if not os.path.isfile(path):
        return Lost(message_index, "its file is gone (cleared from the studio's cache)")
    return Picture(path, message_index, image_index, role, item_id_of(file.name or path))


def item_id_of(name: str) -> str | None:
    """`banana-item-<id>.png` → `<id>` (the caller checks it against the owner's library)."""
    stem = Path(name).stem
    if not stem.startswith(ITEM_PREFIX):
        return None
    item = stem[len(ITEM_PREFIX):]
    return item if item and len(item) <= 64 and item.replace("-", "").isalnum() else None


def reply_file(path: str, item_id: str | None) -> FileData:
    """A result as the Chatbot shows it, named after its library item (how the next turn
    finds the parent of an edit)."""
    name = f"{ITEM_PREFIX}{item_id}.png" if item_id else Path(path).name
    mime = mimetypes.guess_type(path)[0] or "image/png"
    return FileData(path=path, orig_name=name, mime_type=mime)


# -- the conversation ---------------------------------------------------------------------------
def parts_of(message: object) -> tuple[str, list[object]]:
    """A Chatbot message's role and content parts (a message dict or a ChatMessage)."""
    if isinstance(message, Mapping):
        role, content = message.get("role"), message.get("content")
    else:
        role, content = getattr(message, "role", None), getattr(message, "content", None)
    parts = list(content) if isinstance(content, (list, tuple)) and not _is_pair(content) \
        else [content]
    return (role if isinstance(role, str) else ""), [p for p in parts if p is not None]


def _is_pair(content: Sequence[object]) -> bool:
    """Gradio 4's `(path, alt)` content is one file, not two parts."""
    return isinstance(content, tuple) and 1 <= len(content) <= 2 and isinstance(content[0], str) \
        and (len(content) == 1 or content[1] is None or isinstance(content[1], str)) \
        and Path(content[0]).suffix.lower() in IMAGE_SUFFIXES


def text_of(message: object) -> str:
    _, parts = parts_of(message)
    texts: list[str] = []
    for part in parts:
        if isinstance(part, str) and _file_of(part) is None:
            texts.append(part)
        elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
            texts.append(str(part["text"]))
    return "\n".join(texts).strip()


def pictures(history: Sequence[object], roots: Sequence[str]) -> list[Picture | Lost]:
    """Every picture of the conversation, oldest first."""
    out: list[Picture | Lost] = []
    for index, message in enumerate(history):
        role, parts = parts_of(message)
        number = 0
        for part in parts:
            found = picture_of(part, index, number, role, roots)
            if found is not None:
                out.append(found)
                number += 1
    return out


def source_for(history: Sequence[object], branch: int | None,
               roots: Sequence[str]) -> Picture | None:
    """The picture the next turn continues from: the clicked one's message (`branch`), else
    the latest in the conversation; None when there is none. `LostImage` when that picture
    cannot be read (never an older one instead, never nothing)."""
    found = pictures(history, roots)
    if branch is not None:
        found = [p for p in found if p.message_index == branch]
        if not found:
            raise LostImage("The picture you picked is no longer in the conversation: click "
                            "one again, or attach it.")
    if not found:
        return None
    latest = found[-1]
    if isinstance(latest, Lost):
        raise LostImage(
            f"The picture in message {latest.message_index + 1} can't be read: {latest.why}. "
            "Attach it again, or say \"draw a new …\" to start over.")
    return latest


def history_entries(history: Sequence[object], roots: Sequence[str]) -> tuple[HistoryEntry, ...]:
    """The last messages, summarised for the LLM router (as the API's parser does)."""
    entries: list[HistoryEntry] = []
    for message in history[-HISTORY_MESSAGES:]:
        role, parts = parts_of(message)
        if role not in ("user", "assistant"):
            continue
        images = sum(1 for part in parts if _file_of(part) is not None)
        text = text_of(message)[:HISTORY_CHARS]
        entries.append(HistoryEntry("user" if role == "user" else "assistant", text, images))
    return tuple(entries)


def read_image(path: str, message_index: int, image_index: int, role: str,
               max_bytes: int) -> ChatImage:
    size = os.path.getsize(path)
    if size > max_bytes:
        raise LostImage(f"The picture {Path(path).name} is too large ({size // 1_000_000} MB).")
    data = Path(path).read_bytes()
    mime = mimetypes.guess_type(path)[0] or "image/png"
    return ChatImage(data, mime, message_index, image_index, role)


def turn_for(text: str, attached: Sequence[str], history: Sequence[object], branch: int | None,
             *, roots: Sequence[str] | None = None, max_bytes: int) -> tuple[ChatTurn,
                                                                              Picture | None]:
    """The turn the person just typed (with its attached files), and the earlier picture it
    continues from (None when something is attached, or there is none). Reads files: call it
    off the event loop."""
    roots = roots if roots is not None else [get_upload_folder()]
    if len(attached) > MAX_ATTACHED_IMAGES:
        raise LostImage(f"Attach at most {MAX_ATTACHED_IMAGES} pictures at a time.")
    index = len(history)
    images = tuple(read_image(path, index, number, "user", max_bytes)
                   for number, path in enumerate(attached))
    source = None if images else source_for(history, branch, roots)
    context = None
    if source is not None:
        context = read_image(source.path, source.message_index, source.image_index,
                             source.role, max_bytes)
    cleaned, changed = clean_text(text)
    turn = ChatTurn(cleaned.strip(), images, context, history_entries(history, roots), index,
                    changed)
    return turn, source

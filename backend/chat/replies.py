"""What `/v1/chat/completions` sends back: pure builders, no I/O.

- `reply_text(...)`: one short line (what was done, seed, size, and "routed by the LLM" when it
  was) and the image as markdown `![…](data:image/png;base64,…)`.
- `completion_body(...)`: a non-streaming `chat.completion` with `choices[0].message.content`
  and `message.images` (LiteLLM's convention for image-generating chat models).
- Streaming (SSE): `role_event` first, `KEEP_ALIVE` comment lines while the job runs (so a
  proxy's idle timeout does not cut a 60 s job), `content_event`, `finish_event`
  (`finish_reason: "stop"`), then `DONE`. A failure after the stream started is `error_event`:
  the official SDKs raise `APIError` with its message.
- `help_text(decision)`: the text answer for the `help` action.
The shapes are checked by parsing them with the `openai` SDK's own models and client.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from .router import Decision

KEEP_ALIVE = ": keep-alive\n\n"
DONE = "data: [DONE]\n\n"
PROMPT_CHARS = 80  # of the prompt quoted in the reply line

HELP_TEXT = """\
I make and edit pictures with Qwen-Image. Try:
- describe a picture: "a red fox in the snow, watercolor" (add "16:9" or "1024x768" for a shape)
- change the latest picture: "now make it night"
- attach an image to edit it, or 2–3 images to combine them
- "remove the background" or "make it a sticker" (a transparent PNG)
- "extend to the left", "make it 16:9", "zoom out"
- "replace the car with a tram", "change only the sky to sunset"
- "draw a new …" starts a fresh picture"""


@dataclass(frozen=True)
class CompletionMeta:
    """What every body and chunk of one answer repeats."""

    id: str
    created: int
    model: str

    @classmethod
    def new(cls, model: str) -> CompletionMeta:
        return cls(f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), model)


# --- texts ------------------------------------------------------------------------------------


def data_url(png: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(png).decode('ascii')}"


def summary_line(decision: Decision, *, seed: int | None, size: tuple[int, int],
                 images: int = 1) -> str:
    """`Edited the latest image: "make it night" — seed 42, 1024×1024.`"""
    prompt = _quote(decision.prompt)
    what = {
        "generate": f"Generated {prompt}" if prompt else "Generated a picture",
        "edit": f"Edited the image: {prompt}" if prompt else "Edited the image",
        "multiref": f"Combined {images} images: {prompt}" if prompt else f"Combined {images} images",
        "remove_background": "Removed the background (transparent PNG)",
        "outpaint": "Extended the picture"
        + (f" ({decision.pads.describe()})" if decision.pads else "")
        + (f": {prompt}" if prompt else ""),
        "region_edit": f"Changed {decision.region or 'the region'}: {prompt}",
        "help": "Nothing to draw",
    }[decision.action]
    facts = [f"seed {seed}"] if seed is not None else []
    facts.append(f"{size[0]}×{size[1]}")
    line = f"{what} — {', '.join(facts)}."
    if decision.decided_by == "llm":
        line += " (Routed by the LLM router.)"
    return line


def reply_text(decision: Decision, *, seed: int | None, size: tuple[int, int], png: bytes,
               images: int = 1) -> str:
    """The reply's `content`: the summary line, then the image as markdown."""
    line = summary_line(decision, seed=seed, size=size, images=images)
    alt = _alt(decision)
    return f"{line}\n\n![{alt}]({data_url(png)})"


def help_text(decision: Decision) -> str:
    """The text answer for `help`: the router's sentence, then what the chat can do."""
    first = decision.reason.strip()
    if first and first != "Here is what I can do.":
        return f"{first}\n\n{HELP_TEXT}"
    return HELP_TEXT


# --- non-streaming ------------------------------------------------------------------------------


def completion_body(meta: CompletionMeta, content: str,
                    images: Sequence[bytes] = ()) -> dict[str, object]:
    """A `chat.completion` body; `images` (PNG bytes) also go into `message.images`."""
    message: dict[str, object] = {"role": "assistant", "content": content}
    if images:
        message["images"] = _image_parts(images)
    return {
        "id": meta.id,
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


# --- streaming ------------------------------------------------------------------------------------


def role_event(meta: CompletionMeta) -> str:
    """The first chunk, sent at once: the assistant's role and empty content."""
    return _event(_chunk(meta, {"role": "assistant", "content": ""}, None))


def content_event(meta: CompletionMeta, content: str, images: Sequence[bytes] = ()) -> str:
    """The answer in one chunk (with `delta.images` when there are images)."""
    delta: dict[str, object] = {"content": content}
    if images:
        delta["images"] = _image_parts(images)
    return _event(_chunk(meta, delta, None))


def finish_event(meta: CompletionMeta) -> str:
    return _event(_chunk(meta, {}, "stop"))


def error_event(message: str, *, code: str, kind: str = "server_error",
                param: str | None = None) -> str:
    """A failure after the stream began (the status is already 200): OpenAI's error object
    as an event; the SDKs raise it as `APIError`. Send `DONE` after it."""
    error = {"message": message, "type": kind, "param": param, "code": code}
    return _event({"error": error})


def stream_events(meta: CompletionMeta, content: str,
                  images: Sequence[bytes] = ()) -> tuple[str, ...]:
    """A whole answer as events, for replies that need no waiting (help, errors in text)."""
    return (role_event(meta), content_event(meta, content, images), finish_event(meta), DONE)


def _chunk(meta: CompletionMeta, delta: dict[str, object],
           finish_reason: str | None) -> dict[str, object]:
    return {
        "id": meta.id,
        "object": "chat.completion.chunk",
        "created": meta.created,
        "model": meta.model,
        "choices": [
            {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        ],
    }


def _event(payload: dict[str, object]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n"


def _image_parts(images: Sequence[bytes]) -> list[dict[str, object]]:
    return [{"type": "image_url", "image_url": {"url": data_url(png)}} for png in images]


def _quote(prompt: str) -> str:
    prompt = " ".join(prompt.split())
    if len(prompt) > PROMPT_CHARS:
        prompt = prompt[: PROMPT_CHARS - 1] + "…"
    return f'"{prompt}"' if prompt else ""


def _alt(decision: Decision) -> str:
    """Alt text without characters that would end markdown's `[...]`."""
    alt = " ".join((decision.prompt or decision.action.replace("_", " ")).split())[:60]
    return alt.replace("[", "(").replace("]", ")").replace("\\", "/") or "image"

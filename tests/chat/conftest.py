"""Helpers for the chat tests: PNGs of a given size and OpenAI-shaped messages around them."""

from __future__ import annotations

import base64
import functools
import io
from typing import Any

from PIL import Image

MAX_IMAGE_BYTES = 25 * 1024 * 1024


@functools.lru_cache(maxsize=32)
def png(width: int, height: int, colour: tuple[int, int, int] = (40, 90, 160)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def user(text: str, *images: bytes) -> dict[str, Any]:
    """A user message: plain text, or content parts with image_url data URLs."""
    if not images:
        return {"role": "user", "content": text}
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    parts += [{"type": "image_url", "image_url": {"url": data_url(image)}} for image in images]
    return {"role": "user", "content": parts}


def assistant(text: str, *images: bytes) -> dict[str, Any]:
    """An assistant reply the way the studio sends it: markdown image + `images`."""
    content = text + "".join(f"\n\n![result]({data_url(image)})" for image in images)
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if images:
        message["images"] = [{"type": "image_url", "image_url": {"url": data_url(image)}}
                             for image in images]
    return message

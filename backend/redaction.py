"""Texts that reach a browser or an API client never name ComfyUI's address.

`scrub` takes the address out of any text; `offline_message` words why ComfyUI did not answer
(what is wrong, what to do) without it.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from backend.comfy import ComfyError


def scrub(text: str, comfy_url: str) -> str:
    """Remove ComfyUI's address from a text that may reach the browser."""
    if not comfy_url:
        return text
    parts = urlsplit(comfy_url)
    for secret in filter(None, (comfy_url, parts.netloc, parts.hostname)):
        text = text.replace(secret, "ComfyUI")
    return text


def offline_message(exc: BaseException, comfy_url: str = "") -> str:
    """A sentence for the browser: what is wrong, what to do, never the URL."""
    name = type(exc).__name__
    if name in ("ComfyUnreachable", "ConnectError", "ConnectTimeout", "OSError"):
        text = "ComfyUI is not reachable. Check that it is running and that COMFYUI_URL is right."
    elif isinstance(exc, asyncio.TimeoutError | TimeoutError) or "Timeout" in name:
        text = "ComfyUI did not answer in time; it may be busy loading a model or overloaded."
    elif isinstance(exc, ComfyError) and exc.message:
        text = exc.message
    else:
        text = f"ComfyUI answered unexpectedly ({name})."
    return scrub(text, comfy_url)

"""Texts that reach a browser or an API client never name a ComfyUI server's address.

`scrub` takes every configured server's address out of any text (COMFYUI_URL may list several);
`offline_message` words why ComfyUI did not answer (what is wrong, what to do) without it.
"""

from __future__ import annotations

import asyncio
import functools
from urllib.parse import urlsplit

from backend.comfy import ComfyError
from backend.settings import parse_servers


def scrub(text: str, comfy_url: str) -> str:
    """Remove every ComfyUI address in `comfy_url` (one URL or the COMFYUI_URL list)."""
    if not comfy_url:
        return text
    for secret in _secrets(comfy_url):
        text = text.replace(secret, "ComfyUI")
    return text


@functools.lru_cache(maxsize=64)
def _secrets(comfy_url: str) -> tuple[str, ...]:
    """The strings to hide, longest first (a URL before its host). A host name that is also
    a server's label stays: the label was made from it to be seen."""
    try:
        servers = parse_servers(comfy_url)
    except ValueError:   # not a list we can read: hide it whole, and its host
        parts = urlsplit(comfy_url)
        found = {comfy_url, parts.netloc, parts.hostname or ""}
    else:
        labels = {s.label for s in servers}
        found = {comfy_url}
        for server in servers:
            parts = urlsplit(server.url)
            found |= {server.url, parts.netloc}
            if parts.hostname and parts.hostname not in labels:
                found.add(parts.hostname)
    return tuple(sorted(filter(None, found), key=len, reverse=True))


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

"""The operations guide's runbook as commands: `python app.py health|warmup|free`.

`health` is the guide's end-to-end probe, one line per step, exit status = the failing step:
  1. ComfyUI's queue answers within 5 s;
  2. the studio's own /v1/images/generations returns a PNG (so API, studio, ComfyUI all work).
`warmup` loads each mode's models with a tiny job; `free` asks ComfyUI to unload them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import io
import time
from collections.abc import Callable

import httpx
from PIL import Image, UnidentifiedImageError

from backend.modes import REGISTRY, ModeRegistry
from backend.settings import Settings

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
QUEUE_TIMEOUT_S = 5.0
Say = Callable[[str], None]


def main(
    argv: list[str], settings: Settings, say: Say = print, registry: ModeRegistry = REGISTRY
) -> int:
    parser = argparse.ArgumentParser(prog="app.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    health = sub.add_parser("health", help="end-to-end probe: ComfyUI queue, then a tiny image")
    health.add_argument("--url", help="the studio to probe (default: this host's studio port)")
    health.add_argument("--timeout", type=float, default=60.0,
                        help="seconds allowed for the test image (default 60)")
    warm = sub.add_parser("warmup", help="load each mode's models with a tiny job")
    warm.add_argument("--modes", nargs="+", choices=registry.names(), help="only these modes")
    sub.add_parser("free", help="ask ComfyUI to unload models and free VRAM")
    args = parser.parse_args(argv)
    if args.command == "health":
        return health_probe(settings, args.url or default_studio_url(settings), args.timeout, say)
    if args.command == "warmup":
        return asyncio.run(_warmup(settings, registry, args.modes, say))
    return asyncio.run(_free(settings, say))


def default_studio_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


def health_probe(settings: Settings, studio_url: str, timeout: float, say: Say) -> int:
    """Returns 0 when every step passed, else the number of the step that failed."""
    started = time.monotonic()
    try:
        response = httpx.get(f"{settings.comfy_url}/queue", timeout=QUEUE_TIMEOUT_S)
        response.raise_for_status()
        queue = response.json()
        running, pending = len(queue.get("queue_running", [])), len(queue.get("queue_pending", []))
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        say(f"1. ComfyUI queue at {settings.comfy_url}: FAILED ({_reason(exc)})")
        return 1
    say(f"1. ComfyUI queue at {settings.comfy_url}: ok ({running} running, {pending} pending, "
        f"{time.monotonic() - started:.1f} s)")

    started = time.monotonic()
    url = studio_url.rstrip("/") + "/v1/images/generations"
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    body = {"prompt": "healthcheck", "size": "256x256", "n": 1,  # the route's default model
            "steps": 1, "response_format": "b64_json"}
    try:
        response = httpx.post(url, json=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        say(f"2. Studio image generation at {url}: FAILED ({_reason(exc)})")
        return 2
    problem, size = _check_image_response(response)
    if problem:
        say(f"2. Studio image generation at {url}: FAILED ({problem})")
        return 2
    say(f"2. Studio image generation at {url}: ok ({size} PNG in "
        f"{time.monotonic() - started:.1f} s)")
    say("OK")
    return 0


def _check_image_response(response: httpx.Response) -> tuple[str | None, str]:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}, body is not JSON", ""
    if response.status_code != 200:
        message = body.get("error", {}).get("message") if isinstance(body, dict) else None
        return f"HTTP {response.status_code}: {message or body}", ""
    try:
        data = base64.b64decode(body["data"][0]["b64_json"], validate=True)
    except (KeyError, IndexError, TypeError, binascii.Error):
        return "the answer has no data[0].b64_json", ""
    if not data.startswith(PNG_SIGNATURE):
        return "b64_json is not a PNG", ""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return None, f"{image.width}x{image.height}"
    except (UnidentifiedImageError, OSError) as exc:
        return f"the PNG does not decode ({exc})", ""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out: {type(exc).__name__}"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or host unreachable"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return f"{type(exc).__name__}: {exc}"


async def _warmup(
    settings: Settings, registry: ModeRegistry, modes: list[str] | None, say: Say
) -> int:
    from backend.context import build_context
    from backend.warmup import warm_up

    ctx = build_context(settings, registry)
    try:
        results = await warm_up(ctx.studio, modes, surface="cli")
    finally:
        await ctx.aclose()
    width = max(len(r.mode) for r in results) if results else 0
    for r in results:
        say(f"{r.mode:<{width}}  {'ok    ' if r.ok else 'FAILED'}  {r.seconds:6.1f} s  {r.message}")
    failed = [r.mode for r in results if not r.ok]
    say(f"warm-up failed for: {', '.join(failed)}" if failed else "all modes warm")
    return 1 if failed else 0


async def _free(settings: Settings, say: Say) -> int:
    from backend.context import build_context

    ctx = build_context(settings)
    try:
        await ctx.monitor.refresh_now()     # the "before" figure, so the sentence says how much
        message = await ctx.monitor.free_vram()
    finally:
        await ctx.aclose()
    say(message)
    return 1 if message.startswith("Could not") else 0

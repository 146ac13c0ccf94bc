"""The operations guide's runbook as commands: `python app.py health|warmup|free|library`.

`health` is the guide's end-to-end probe against a studio (`--url`, default this host's), one
line per step, exit status = the failing step:
  1. the studio's /healthz says ITS ComfyUI is reachable (the probed studio's, not the
     ComfyUI this machine's settings name);
  2. the studio's /v1/images/generations returns a PNG (API, studio, ComfyUI all work);
  3. the chat path: /v1/chat/completions with the guide's own body answers
     `.choices[0].message.content`.
`warmup` loads each mode's models with a tiny job; `free` asks ComfyUI to unload them;
`library export|import|check` moves or checks the library (backend/library/cli.py).

With several ComfyUI servers, `health`, `warmup` and `free` act on every server, or on one
with `--backend LABEL` (`health` then checks that server in step 1; the test image goes where
the studio routes it).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import functools
import io
import time
from collections.abc import Callable

import httpx
from PIL import Image, UnidentifiedImageError

from backend.library import cli as library_cli
from backend.modes import REGISTRY, ModeRegistry
from backend.settings import Settings

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEALTHZ_TIMEOUT_S = 5.0
CHAT_MODEL = "qwen-image-chat"
COMMANDS = ("health", "warmup", "free", "library")
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
    free = sub.add_parser("free", help="ask ComfyUI to unload models and free VRAM")
    labels = [server.label for server in settings.servers]
    for command in (warm, free):
        command.add_argument("--backend", choices=labels, metavar="LABEL",
                             help=f"only this ComfyUI server ({', '.join(labels)}; "
                             "default: all)")
    health.add_argument("--backend", metavar="LABEL",
                        help="check this server of the probed studio (default: all of them)")
    library_cli.add_commands(sub)
    args = parser.parse_args(argv)
    if args.command == "health":
        return health_probe(settings, args.url or default_studio_url(settings), args.timeout,
                            say, backend=args.backend)
    if args.command == "warmup":
        return asyncio.run(_warmup(settings, registry, args.modes, say, args.backend))
    if args.command == "library":
        return library_cli.run(args, settings.library, say)
    return asyncio.run(_free(settings, say, args.backend))


def default_studio_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


def health_probe(
    settings: Settings, studio_url: str, timeout: float, say: Say, *, backend: str | None = None
) -> int:
    """Returns 0 when every step passed, else the number of the step that failed."""
    base = studio_url.rstrip("/")
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    steps: tuple[Callable[[], Step], ...] = (
        functools.partial(_comfyui_of_studio, base, backend),
        functools.partial(_image_step, base, headers, timeout),
        functools.partial(_chat_step, base, headers, timeout),
    )
    for number, step in enumerate(steps, start=1):
        started = time.monotonic()
        label, problem, facts = step()
        if problem is not None:
            say(f"{number}. {label}: FAILED ({problem})")
            return number
        say(f"{number}. {label}: ok ({facts}{time.monotonic() - started:.1f} s)")
    say("OK")
    return 0


Step = tuple[str, str | None, str]     # (what was checked, the problem or None, facts)


def _comfyui_of_studio(base: str, backend: str | None = None) -> Step:
    """Step 1: ask the studio whether its ComfyUI answers (its /healthz): every server it
    lists, or the one named `backend`."""
    label = f"ComfyUI of the studio at {base} (/healthz)"
    try:
        # fresh: a poll made now, not the poller's last (a few seconds old at most)
        response = httpx.get(base + "/healthz?fresh=1", timeout=HEALTHZ_TIMEOUT_S)
        body = response.json()
        comfy = body["comfyui"]
    except httpx.HTTPError as exc:
        return label, f"the studio did not answer: {_reason(exc)}", ""
    except (ValueError, KeyError, TypeError):
        return label, f"HTTP {response.status_code}, not the studio's health answer", ""
    servers = body.get("servers") if isinstance(body, dict) else None
    if not isinstance(servers, dict) or not servers:     # a studio from before issue 15
        servers = {"": comfy}
    several = len(servers) > 1
    if backend is not None:
        if backend not in servers:
            return label, f"the studio has no ComfyUI server called {backend!r} " \
                f"(it has {', '.join(servers)})", ""
        servers = {backend: servers[backend]}
    facts = []
    for name, one in servers.items():
        who = f"ComfyUI {name}" if several else "ComfyUI"
        if not isinstance(one, dict) or one.get("reachable") is not True:
            error = one.get("error") if isinstance(one, dict) else None
            whose = who if several else "its ComfyUI"
            return label, f"the studio cannot reach {whose}: {error or 'no reason given'}", ""
        facts.append(f"{who} {one.get('version') or '?'}, {one.get('queue_running', 0)} "
                     f"running, {one.get('queue_pending', 0)} pending")
    return label, None, "; ".join(facts) + ", "


def _image_step(base: str, headers: dict[str, str], timeout: float) -> Step:
    """Step 2: a tiny image through /v1/images/generations."""
    url = base + "/v1/images/generations"
    label = f"Studio image generation at {url}"
    body = {"prompt": "healthcheck", "size": "256x256", "n": 1,  # the route's default model
            "steps": 1, "response_format": "b64_json"}
    try:
        response = httpx.post(url, json=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        return label, _reason(exc), ""
    problem, size = _check_image_response(response)
    return label, problem, f"{size} PNG in "


def _chat_step(base: str, headers: dict[str, str], timeout: float) -> Step:
    """Step 3: the guide's chat probe, its body as written."""
    url = base + "/v1/chat/completions"
    label = f"Studio chat at {url}"
    body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "healthcheck"}]}
    try:
        response = httpx.post(url, json=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        return label, _reason(exc), ""
    try:
        answer = response.json()
    except ValueError:
        return label, f"HTTP {response.status_code}, body is not JSON", ""
    if response.status_code != 200:
        return label, f"HTTP {response.status_code}: {_error_message(answer)}", ""
    try:
        content = answer["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return label, "the answer has no choices[0].message.content", ""
    if not isinstance(content, str) or not content.strip():
        return label, "choices[0].message.content is empty", ""
    pictures = "with a picture, " if "](data:image/" in content else ""
    return label, None, f"{len(content)} characters {pictures}in "


def _error_message(body: object) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message") or body)
    return str(body)[:200]


def _check_image_response(response: httpx.Response) -> tuple[str | None, str]:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}, body is not JSON", ""
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {_error_message(body)}", ""
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
    settings: Settings, registry: ModeRegistry, modes: list[str] | None, say: Say,
    backend: str | None = None,
) -> int:
    """Each mode on one server (`backend`), or, with several servers, on each of them (side
    by side: they are separate GPUs)."""
    from backend.context import build_context
    from backend.warmup import WarmupResult, warm_up

    ctx = build_context(settings, registry)
    labels = [s.label for s in settings.servers]
    targets: list[str | None] = (
        [backend] if backend is not None else ([None] if len(labels) == 1 else list(labels))
    )
    try:
        runs = await asyncio.gather(*(
            warm_up(ctx.studio, modes, surface="cli", server=target) for target in targets
        ))
    finally:
        await ctx.aclose()
    rows: list[tuple[str, WarmupResult]] = [
        (f"{target}: " if target is not None and len(labels) > 1 else "", r)
        for target, results in zip(targets, runs, strict=True) for r in results
    ]
    width = max(len(where + r.mode) for where, r in rows) if rows else 0
    for where, r in rows:
        say(f"{where + r.mode:<{width}}  {'ok    ' if r.ok else 'FAILED'}  {r.seconds:6.1f} s  "
            f"{r.message}")
    failed = [where + r.mode for where, r in rows if not r.ok]
    say(f"warm-up failed for: {', '.join(failed)}" if failed else "all modes warm")
    return 1 if failed else 0


async def _free(settings: Settings, say: Say, backend: str | None = None) -> int:
    from backend.context import build_context

    ctx = build_context(settings)
    try:
        await ctx.monitor.refresh_now()     # the "before" figure, so the sentence says how much
        message = await ctx.monitor.free_vram(backend)
    finally:
        await ctx.aclose()
    say(message)
    return 1 if "Could not" in message else 0

"""Banana Studio entry point: `python app.py` serves the studio; `health`, `warmup`, `free` are
the operations guide's runbook steps as commands. Wiring only: settings → context (studio,
metrics, monitor) → HTTP routes → UI."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

os.environ.setdefault(
    "GRADIO_ANALYTICS_ENABLED", "False"
)  # before gradio is imported: no telemetry

from backend.modes import REGISTRY, ModeRegistry  # noqa: E402
from backend.settings import Settings, normalize_servers  # noqa: E402

if TYPE_CHECKING:
    from fastapi import FastAPI, Request

COMMANDS = ("serve", "health", "warmup", "free", "library")  # library: backend/library/cli.py


def create_app(settings: Settings, registry: ModeRegistry = REGISTRY) -> FastAPI:
    """The FastAPI app: our HTTP routes first (the Gradio mount at "/" catches the rest)."""
    import gradio as gr
    from fastapi import FastAPI

    from backend import http_api
    from backend.api import library_files
    from backend.api.body_limits import BodyLimitMiddleware, route_limits
    from backend.context import build_context
    from ui.app import build_ui, launch_options
    from ui.cache_guard import CacheGuard

    ctx = build_context(settings, registry)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await ctx.start()
        yield
        await ctx.aclose()

    app = FastAPI(title="Banana Studio", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(BodyLimitMiddleware, limits=route_limits(settings))  # every route
    app.state.studio_context = ctx     # the HTTP handlers find it here
    app.include_router(http_api.router)
    app.include_router(library_files.router)    # before the Gradio mount, which takes the rest
    app = gr.mount_gradio_app(
        app,
        build_ui(ctx),
        path="/",
        auth=list(settings.auth) or None,
        max_file_size=settings.max_upload_bytes,
        footer_links=["api"],
        ssr_mode=False,
        **launch_options(),
    )
    login_of = gradio_login(app)
    app.state.library_files = library_files.LibraryFiles(
        ctx.library, login_required=bool(settings.auth), login_of=login_of)
    if settings.auth:   # a cached library file only for the login that owns it
        app.add_middleware(CacheGuard, library=ctx.library, login_of=login_of)
    return app


def gradio_login(app: FastAPI) -> Callable[[Request], str | None]:
    """Who a request is logged in as (STUDIO_AUTH), read the way Gradio's own routes do: its
    login cookie names a token the mounted Gradio app knows."""
    from gradio.routes import App
    from starlette.routing import Mount

    mounted = next(r.app for r in app.routes if isinstance(r, Mount) and isinstance(r.app, App))

    def login_of(request: Request) -> str | None:
        cookie = f"access-token-{mounted.cookie_id}"
        token = request.cookies.get(cookie) or request.cookies.get(
            f"access-token-unsecure-{mounted.cookie_id}")
        user = mounted.tokens.get(token) if token else None
        return user if isinstance(user, str) else None

    return login_of


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="app.py", description=__doc__)
    parser.add_argument("command", nargs="?", default="serve", choices=COMMANDS)
    parser.add_argument("--host", help="interface to serve on (default 127.0.0.1)")
    parser.add_argument("--listen", action="store_true", help="serve on all interfaces (LAN)")
    parser.add_argument("--port", type=int, help="port (default 7860, or $PORT)")
    parser.add_argument(
        "--comfy-url", action="append",
        help="a ComfyUI server's base URL, optionally labelled (a=http://gpu-a:8188); repeat "
        "it for several servers, or list them comma-separated (default $COMFYUI_URL)",
    )
    # Anything else (e.g. `health --timeout 30`, `warmup --modes edit`) goes to backend/cli.py.
    args, args.rest = parser.parse_known_args(argv)
    if args.command == "serve" and args.rest:
        parser.error(f"unrecognized arguments: {' '.join(args.rest)}")
    return args


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {}
    if args.comfy_url:
        overrides["comfy_url"] = normalize_servers(",".join(args.comfy_url))
    if args.listen:
        overrides["host"] = "0.0.0.0"
    elif args.host:
        overrides["host"] = args.host
    if args.port:
        overrides["port"] = args.port
    return Settings.from_env(**overrides)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request is noise
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = settings_from_args(args)
    except ValueError as exc:  # a malformed STUDIO_* variable: say which, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command != "serve":
        from backend.cli import main as cli_main

        return cli_main([args.command, *args.rest], settings)

    import uvicorn

    servers = ", ".join(f"{s.label} at {s.url}" for s in settings.servers)
    print(f"Banana Studio on http://{settings.host}:{settings.port} (ComfyUI: {servers})")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())

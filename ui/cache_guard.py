"""Gradio's file route, for the library files `ui/files.served` put in its cache (a restore, the
history strip, a tab's result): with STUDIO_AUTH, only the login that owns the item gets the
file; anyone else — another login with a URL copied out of a page, a path from before a
restart — gets a 404.

Gradio serves any file of its cache to any logged-in visitor who names it. The served names
are unguessable (a per-process secret), but a name is not a permission: this ASGI middleware
asks `Library.owns_file` for the asking login before Gradio's route answers. Without a login
there is no one to tell apart by cookie (per-browser ids live in the browser's storage), so
the unguessable name stays the key, as for the Library's own route.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from backend.library import Library
from ui.files import cache_root, source_of

FILE_ROUTE = re.compile(r"^/(?:gradio_api/)?file=(.+)$")
LoginOf = Callable[[Request], str | None]


class CacheGuard:
    """Add it only with STUDIO_AUTH (app.py): it refuses every cached library file to a
    request without a login."""

    def __init__(self, app: ASGIApp, *, library: Library, login_of: LoginOf) -> None:
        self.app = app
        self.library = library
        self.login_of = login_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            match = FILE_ROUTE.match(scope.get("path", ""))
            if match and not await run_in_threadpool(   # owns_file is one indexed query
                    self.allowed, unquote(match.group(1)), Request(scope)):
                await PlainTextResponse("Not found.", status_code=404)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def allowed(self, requested: str, request: Request) -> bool:
        cached = os.path.abspath(requested)
        root = os.path.abspath(cache_root())
        if os.path.commonpath([cached, root]) != root:
            return True             # not ours: Gradio's own rules apply
        user = self.login_of(request)
        source = source_of(cached)
        if not user or source is None:
            return False            # nobody logged in, or a name this process never made
        if not _in(source, self.library.data_dir):
            return True             # not a library file: nobody's item
        try:
            return self.library.owns_file(f"user:{user}", source) is not None
        except RuntimeError:        # the library is not open
            return False


def _in(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder)
    except ValueError:
        return False
    return True

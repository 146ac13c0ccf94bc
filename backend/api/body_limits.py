"""Request bodies limited while they are read, for every route and transfer encoding.

A pure ASGI middleware around the whole app (our routes and Gradio's). A declared
`Content-Length` over the route's limit is answered 413 before a byte of the body is read.
Otherwise (chunked bodies included) the bytes are counted as the `http.request` messages
arrive; at the limit the app's receive raises, whatever the app answers is dropped, and the
client gets the 413 instead. The app never holds more than the limit (plus one chunk), so
nothing large reaches memory or disk.

The rest of the body is not read: the 413 says `Connection: close`. Only a short linger
(at most LINGER_S and LINGER_BYTES, discarded as they arrive) sits between the answer and the
close, because closing a socket with unread data in it sends a reset, and a reset can wipe the
413 out of a client's buffer before the client reads it (what nginx's lingering close is for).

Sizes are in MiB and written "MB", as README's settings table does ("25 MB" = 25 × 1024²).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.responses import JSONResponse

from backend.api.errors import error_response
from backend.limits import KIB, MIB, describe_bytes

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON_BYTES = 1 * MIB                 # every other /v1 route (JSON bodies)
FIELDS_BYTES = 1 * MIB               # a form's text fields and multipart framing
EDIT_IMAGES = 3                      # /v1/images/edits: up to 3 images (api/edits.MAX_IMAGES)…
EDIT_MASKS = 1                       # …and a mask
CHAT_IMAGES = 3                      # /v1/chat/completions: up to 3 images, base64 in JSON
GRADIO_FILES = 4                     # files in one Gradio upload (an editor's layers, say)
DEFAULT_BYTES = 64 * KIB             # any other route (a login form, a GET)
LINGER_S = 1.0                       # after a 413: discard what still arrives this long…
LINGER_BYTES = 8 * MIB               # …or this much, whichever comes first, then close


class UploadLimit(Protocol):
    """The one setting the table derives from (backend.settings.Settings has it)."""

    @property
    def max_upload_bytes(self) -> int: ...


@dataclass(frozen=True)
class RouteLimit:
    prefix: str          # matched against the request path; the longest prefix wins
    max_bytes: int
    openai: bool = False  # answer in OpenAI's error shape (the /v1 API)


def route_limits(settings: UploadLimit) -> tuple[RouteLimit, ...]:
    """The one table of body limits, from the settings."""
    upload = settings.max_upload_bytes
    base64 = math.ceil(upload * 4 / 3)
    return (
        RouteLimit("/v1/images/edits", (EDIT_IMAGES + EDIT_MASKS) * upload + FIELDS_BYTES, True),
        RouteLimit("/v1/chat/completions", CHAT_IMAGES * base64 + FIELDS_BYTES, True),
        RouteLimit("/v1/", JSON_BYTES, True),
        RouteLimit("/gradio_api/upload", GRADIO_FILES * upload + FIELDS_BYTES),
        RouteLimit("/gradio_api/", upload + FIELDS_BYTES),
        RouteLimit("", DEFAULT_BYTES),
    )


class BodyTooLarge(Exception):
    """Raised into the app's receive() once its body passes the route's limit."""


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, limits: Sequence[RouteLimit]) -> None:
        self.app = app
        self.limits = tuple(sorted(limits, key=lambda limit: len(limit.prefix), reverse=True))

    def limit_for(self, path: str) -> RouteLimit:
        for limit in self.limits:
            if path.startswith(limit.prefix):
                return limit
        return RouteLimit("", DEFAULT_BYTES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(str(scope.get("path", "")))
        declared = _content_length(scope)
        if declared is not None and declared > limit.max_bytes:
            # Not one byte of it read. A client waiting for "100 Continue" sends nothing
            # unless asked, so it needs no linger (and asking would invite the body).
            await _refuse(limit, receive, send, linger=not _expects_continue(scope))
            return
        guard = _Guard(limit.max_bytes, receive, send)
        try:
            await self.app(scope, guard.receive, guard.send)
        except Exception:
            if not guard.exceeded:
                raise
            # the app failed on its cut-off body (BodyTooLarge or what it made of it)
        if guard.exceeded and not guard.started:
            await _refuse(limit, receive, send, linger=True)


class _Guard:
    """Counts the body as it arrives; past the limit, hides the app's own answer."""

    def __init__(self, max_bytes: int, receive: Receive, send: Send) -> None:
        self.max_bytes = max_bytes
        self.received = 0
        self.exceeded = False
        self.started = False     # the app's response went out before the limit was hit
        self._receive = receive
        self._send = send

    async def receive(self) -> Message:
        if self.exceeded:
            raise BodyTooLarge
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.max_bytes:
                self.exceeded = True
                raise BodyTooLarge
        return message

    async def send(self, message: Message) -> None:
        if self.exceeded:
            return        # whatever the app says about a cut-off body is replaced by the 413
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None     # the server refuses a malformed one itself
    return None


def _expects_continue(scope: Scope) -> bool:
    return any(name == b"expect" and value.lower() == b"100-continue"
               for name, value in scope.get("headers", ()))


async def _refuse(limit: RouteLimit, receive: Receive, send: Send, *, linger: bool) -> None:
    message = (f"The request body is over {describe_bytes(limit.max_bytes)}, the limit for "
               "this address; send less (smaller or fewer files).")
    # close: the server drops the connection after this answer instead of reading the rest
    headers = {"connection": "close"}
    response = (
        error_response(413, message, code="request_too_large", headers=headers)
        if limit.openai
        else JSONResponse({"detail": message}, status_code=413, headers=headers)
    )
    await send({"type": "http.response.start", "status": 413,
                "headers": response.raw_headers})
    # The whole answer goes out now; the response stays open only while we linger.
    await send({"type": "http.response.body", "body": response.body, "more_body": linger})
    if linger:
        await _discard_briefly(receive)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _discard_briefly(receive: Receive) -> None:
    """Read and drop what the client still sends, until it stops or hangs up, or the linger
    budget is spent: time for it to see the 413 before the connection is closed."""
    drained = 0
    try:
        async with asyncio.timeout(LINGER_S):
            while drained < LINGER_BYTES:
                message = await receive()
                if message["type"] != "http.request":
                    return                  # the client hung up
                drained += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return
    except TimeoutError:
        pass

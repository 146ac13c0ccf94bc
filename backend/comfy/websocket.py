"""The websocket a ComfyClient keeps to its ComfyUI server, and the routing of its messages.

ComfyUI sends a prompt's messages only to the socket registered under the prompt's client_id,
so every job of one client shares one socket; the hub hands each message to the watcher of
its prompt_id. Each ComfyClient (one per server) has its own hub. It opens on first need and
reconnects with backoff for as long as it is open.

A socket counts as up only once ComfyUI has greeted it (its first `status` message), and it
is pinged every `ping_interval_s`: a socket that does not greet or answer a ping within
`ping_timeout_s` is stale (open but silent: a hung proxy, a frozen server loop) and is
dropped and replaced, so jobs stop waiting on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidURI,
    WebSocketException,
)

from backend.comfy.messages import (
    Executing,
    ExecutionErrorMessage,
    ExecutionInterrupted,
    ExecutionStart,
    ExecutionSuccess,
    Message,
    PreviewImage,
    ProgressText,
    StatusMessage,
    parse_binary_message,
    parse_text_message,
    prompt_id_of,
)

log = logging.getLogger(__name__)

FEATURE_FLAGS = {"type": "feature_flags", "data": {"supports_preview_metadata": True}}
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 10.0
PING_INTERVAL_S = 3.0
PING_TIMEOUT_S = 3.0
# A close handshake with a silent peer would wait this long; stale sockets are aborted instead.
CLOSE_TIMEOUT_S = 1.0
# a consumer that stops reading must not grow memory without bound: previews are lossy anyway
_MAX_QUEUED_PREVIEWS = 64


def ws_url_for(base_url: str, client_id: str) -> str:
    """ComfyUI's websocket URL for an http(s) base URL (a path prefix is kept)."""
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    path = parts.path.rstrip("/") + "/ws"
    return urlunsplit((scheme, parts.netloc, path, f"clientId={quote(client_id)}", ""))


@dataclass(frozen=True)
class ConnectionChanged:
    """Put into every watcher and listener when the socket goes up or down."""

    connected: bool


Listener = Callable[[StatusMessage | ConnectionChanged], None]


class Watcher:
    """The messages of one prompt, in arrival order (plus ConnectionChanged markers)."""

    def __init__(self, prompt_id: str) -> None:
        self.prompt_id = prompt_id
        self._queue: asyncio.Queue[Message | ConnectionChanged] = asyncio.Queue()

    def put(self, item: Message | ConnectionChanged) -> None:
        if isinstance(item, PreviewImage) and self._queue.qsize() > _MAX_QUEUED_PREVIEWS:
            return
        self._queue.put_nowait(item)

    async def get(self) -> Message | ConnectionChanged:
        return await self._queue.get()

    def empty(self) -> bool:
        return self._queue.empty()


class _Silent(Exception):
    """The socket opened but ComfyUI never greeted it."""


class SocketHub:
    def __init__(
        self,
        ws_url: str,
        *,
        open_timeout: float = 10.0,
        ping_interval_s: float = PING_INTERVAL_S,
        ping_timeout_s: float = PING_TIMEOUT_S,
    ) -> None:
        self.ws_url = ws_url
        self._open_timeout = open_timeout
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self._watchers: dict[str, Watcher] = {}
        self._listeners: list[Listener] = []
        self._task: asyncio.Task[None] | None = None
        self._probe: asyncio.Task[bool] | None = None
        self._ws: ClientConnection | None = None
        self._connected = False
        self._attempted = asyncio.Event()   # set once a connect attempt has finished
        self._up = asyncio.Event()
        self._closed = False
        self._current: str | None = None    # the prompt executing now, for type-1 previews
        self.last_status: StatusMessage | None = None
        self.last_error: str | None = None
        self.epoch = 0               # how many times a socket came up (greeted) so far
        self.stale_replaced = 0      # sockets dropped because they stayed silent

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    def start(self) -> None:
        """Open the socket in the background if it is not already (idempotent)."""
        if self._closed:
            raise RuntimeError("the ComfyUI socket hub is closed")
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="comfy-ws")

    async def wait_first_attempt(self, within_s: float) -> bool:
        """Wait until connected, or until a connect attempt failed; True if connected."""
        if not self._connected:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within_s):
                    await self._attempted.wait()
        return self._connected

    async def wait_connected(self, within_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                await self._up.wait()
        return self._connected

    def is_closed(self) -> bool:
        # A call, not an attribute: aclose() flips it across awaits, which type narrowing
        # of an attribute would not see.
        return self._closed

    async def aclose(self) -> None:
        self._closed = True
        for task in (self._probe, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._probe = self._task = None
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        self._set_connected(False)

    async def drop(self) -> None:
        """Close the current connection (the hub reconnects); for tests and diagnostics."""
        if self._ws is not None:
            await self._ws.close()

    def probe(self) -> None:
        """Check now that the socket is alive (a ping); replace it if no pong comes back in
        time. The client calls this when /history shows a prompt done that the socket never
        reported finished."""
        ws = self._ws
        if ws is None or not self._connected or (self._probe and not self._probe.done()):
            return
        self._probe = asyncio.get_running_loop().create_task(
            self._check_alive(ws, "a finished prompt was never reported"), name="comfy-ws-probe"
        )

    # ---- registration ----------------------------------------------------------------------

    def watch(self, prompt_id: str) -> Watcher:
        watcher = Watcher(prompt_id)
        self._watchers[prompt_id] = watcher
        return watcher

    def unwatch(self, prompt_id: str) -> None:
        self._watchers.pop(prompt_id, None)

    @property
    def watched(self) -> frozenset[str]:
        return frozenset(self._watchers)

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every status message and connection change; returns remover."""
        self._listeners.append(listener)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return remove

    # ---- the connection loop ---------------------------------------------------------------

    async def _run(self) -> None:
        delay = BACKOFF_START_S
        while not self.is_closed():
            try:
                async with connect(
                    self.ws_url, open_timeout=self._open_timeout, max_size=None,
                    compression=None, ping_interval=None, close_timeout=CLOSE_TIMEOUT_S,
                ) as ws:
                    self._ws = ws
                    await ws.send(json.dumps(FEATURE_FLAGS))
                    greeting = await self._greeting(ws)
                    self.last_error = None
                    delay = BACKOFF_START_S   # only a socket that proved alive resets it
                    self._set_connected(True)
                    self._attempted.set()
                    keepalive = asyncio.get_running_loop().create_task(
                        self._keepalive(ws), name="comfy-ws-keepalive"
                    )
                    try:
                        self._dispatch(greeting)
                        async for frame in ws:
                            self._dispatch(frame)
                    finally:
                        keepalive.cancel()
            except asyncio.CancelledError:
                raise
            except _Silent as exc:
                self.stale_replaced += 1
                self.last_error = str(exc)
                log.info("ComfyUI websocket %s: %s", self.ws_url, exc)
            except (OSError, TimeoutError, InvalidURI, InvalidHandshake, WebSocketException) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.info("ComfyUI websocket %s: %s", self.ws_url, self.last_error)
            finally:
                self._ws = None
                self._set_connected(False)
                self._attempted.set()
            if self.is_closed():
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)

    async def _greeting(self, ws: ClientConnection) -> str | bytes:
        """ComfyUI's first message (a status) on a new socket; _Silent if none comes in time."""
        try:
            async with asyncio.timeout(self.ping_timeout_s):
                return await ws.recv()
        except TimeoutError:
            _abort(ws)
            raise _Silent(
                f"opened, but no message from ComfyUI within {self.ping_timeout_s:g} s"
            ) from None

    async def _keepalive(self, ws: ClientConnection) -> None:
        while True:
            await asyncio.sleep(self.ping_interval_s)
            if not await self._check_alive(ws, "no pong"):
                return

    async def _check_alive(self, ws: ClientConnection, why: str) -> bool:
        """Ping; False (and the socket dropped, counted, reconnected) if no pong in time."""
        try:
            async with asyncio.timeout(self.ping_timeout_s):
                pong = await ws.ping()
                await pong
            return True
        except ConnectionClosed:
            return False            # already going: the run loop reconnects
        except TimeoutError:
            pass
        if ws is not self._ws:
            return False
        self.stale_replaced += 1
        log.warning("ComfyUI websocket went silent (%s within %g s); replacing it", why,
                    self.ping_timeout_s)
        self._set_connected(False)   # jobs stop trusting it now, not after the close
        _abort(ws)
        return False

    def _set_connected(self, value: bool) -> None:
        if value == self._connected:
            return
        self._connected = value
        if value:
            self.epoch += 1
            self._up.set()
        else:
            self._up.clear()
            # a prompt that ran while we were away may be over; do not pin previews to it
            self._current = None
        log.info("ComfyUI websocket %s", "connected" if value else "disconnected")
        marker = ConnectionChanged(value)
        for watcher in list(self._watchers.values()):
            watcher.put(marker)
        self._notify(marker)

    def _notify(self, item: StatusMessage | ConnectionChanged) -> None:
        for listener in list(self._listeners):
            try:
                listener(item)
            except Exception:
                log.exception("websocket listener failed")

    def _dispatch(self, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            message = parse_binary_message(frame)
        else:
            try:
                message = parse_text_message(json.loads(frame))
            except ValueError:
                log.warning("ComfyUI sent a text frame that is not JSON: %.200r", frame)
                return
        self.route(message)

    def route(self, message: Message) -> None:
        """Deliver one parsed message (public so tests can drive routing without a server)."""
        if isinstance(message, StatusMessage):
            self.last_status = message
            self._notify(message)
            return
        self._track_current(message)
        prompt_id = prompt_id_of(message)
        if prompt_id is None and isinstance(message, PreviewImage | ProgressText):
            prompt_id = self._current
            if isinstance(message, PreviewImage) and prompt_id is not None:
                message = dataclasses.replace(message, prompt_id=prompt_id)
        watcher = self._watchers.get(prompt_id) if prompt_id else None
        if watcher is not None:
            watcher.put(message)
        else:
            log.debug("no watcher for %s (prompt %s)", type(message).__name__, prompt_id)

    def _track_current(self, message: Message) -> None:
        if isinstance(message, ExecutionStart) and message.prompt_id:
            self._current = message.prompt_id
        elif isinstance(message, Executing) and message.prompt_id:
            self._current = message.prompt_id if message.node is not None else None
        elif (
            isinstance(message, ExecutionSuccess | ExecutionErrorMessage | ExecutionInterrupted)
            and message.prompt_id == self._current
        ):
            self._current = None


def _abort(ws: ClientConnection) -> None:
    """Drop the connection without a close handshake (a silent peer would not answer it)."""
    ws.transport.abort()

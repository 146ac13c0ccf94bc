"""The fake's websocket side: `/ws?clientId=` sockets, routing by client id, binary frames.

Messages are emitted synchronously (in the order the server produces them) and written by one
publisher task, as ComfyUI's own message queue does, so every socket sees a single order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import uuid
from io import BytesIO
from typing import Any

from aiohttp import WSMsgType, web
from PIL import Image, ImageOps

from .faults import Faults
from .state import Counters

log = logging.getLogger(__name__)

PREVIEW_IMAGE = 1
TEXT = 3
PREVIEW_IMAGE_WITH_METADATA = 4
SERVER_FEATURES = {"supports_preview_metadata": True, "max_upload_size": 104857600}


def encode_preview(image: Image.Image, fmt: str, max_size: int | None) -> bytes:
    if max_size is not None:
        image = ImageOps.contain(image, (max_size, max_size), Image.Resampling.BILINEAR)
    if fmt == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    buffer = BytesIO()
    image.save(buffer, format=fmt, quality=95, compress_level=1)
    return buffer.getvalue()


class Hub:
    def __init__(self, faults: Faults, counters: Counters) -> None:
        self.faults = faults
        self.counters = counters
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.metadata: dict[str, dict[str, Any]] = {}
        self.requests: dict[web.WebSocketResponse, web.Request] = {}
        self.queue_remaining = lambda: 0
        # Set by the executor: the client whose prompt runs and its current node, so a
        # reconnecting client is told where it is (as the real server does).
        self.client_id: str | None = None
        self.last_node_id: str | None = None
        self._outbox: asyncio.Queue[tuple[str | None, str | bytes]] = asyncio.Queue()
        self._publisher: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._publisher = asyncio.get_running_loop().create_task(self._publish())

    async def close(self) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
        self.drop_all()

    # --- emitting ------------------------------------------------------------------------

    def emit(self, event: str, data: Any, sid: str | None = None) -> None:
        """Queue a text message for one client (or all when `sid` is None)."""
        self._outbox.put_nowait((sid, json.dumps({"type": event, "data": data})))

    def emit_binary(self, event_type: int, payload: bytes, sid: str | None = None) -> None:
        self._outbox.put_nowait((sid, struct.pack(">I", event_type) + payload))

    def emit_status(self) -> None:
        self.emit("status", {"status": {"exec_info": {"queue_remaining": self.queue_remaining()}}})

    def supports(self, sid: str | None, feature: str) -> bool:
        if sid is None or sid not in self.metadata:
            return False
        return self.metadata[sid].get("feature_flags", {}).get(feature, False) is True

    def emit_preview(self, image: Image.Image, sid: str | None, *, fmt: str = "JPEG",
                     max_size: int | None = 512, metadata: dict[str, Any] | None = None) -> None:
        """Type 4 (JSON metadata + image) when `metadata` is given, else type 1."""
        data = encode_preview(image, fmt, max_size)
        if metadata is not None:
            meta = json.dumps({**metadata, "image_type": "image/png" if fmt == "PNG"
                               else "image/jpeg"}).encode()
            self.emit_binary(PREVIEW_IMAGE_WITH_METADATA,
                             struct.pack(">I", len(meta)) + meta + data, sid)
        else:
            self.emit_binary(PREVIEW_IMAGE, struct.pack(">I", 2 if fmt == "PNG" else 1) + data,
                             sid)

    async def _publish(self) -> None:
        while True:
            sid, message = await self._outbox.get()
            if self.faults.ws_stalled:
                continue            # the socket stays open; nothing more arrives
            targets = list(self.sockets.values()) if sid is None else (
                [self.sockets[sid]] if sid in self.sockets else [])
            for ws in targets:
                await self._send(ws, message)

    @staticmethod
    async def _send(ws: web.WebSocketResponse, message: str | bytes) -> None:
        try:
            if isinstance(message, bytes):
                await ws.send_bytes(message)
            else:
                await ws.send_str(message)
        except Exception as exc:  # noqa: BLE001 - a socket closing under us; keep publishing
            log.debug("websocket send failed: %s", exc)

    # --- connections ---------------------------------------------------------------------

    def drop_all(self) -> int:
        """Cut every connection without a close frame (what a crash or network drop does)."""
        dropped = 0
        for ws, request in list(self.requests.items()):
            transport = request.transport
            if transport is not None:
                transport.abort()
                dropped += 1
            del self.requests[ws]
        return dropped

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        # autoping off: a stalled fake must not answer pings either.
        ws = web.WebSocketResponse(autoping=False, max_msg_size=0)
        await ws.prepare(request)
        sid = request.query.get("clientId", "")
        if sid:
            self.sockets.pop(sid, None)     # reusing a session: the new socket replaces it
        else:
            sid = uuid.uuid4().hex
        self.sockets[sid] = ws
        self.metadata[sid] = {"feature_flags": {}}
        self.requests[ws] = request
        self.counters.add("ws_connections")
        try:
            if not self.faults.ws_stalled:
                await self._send(ws, json.dumps({"type": "status", "data": {
                    "status": {"exec_info": {"queue_remaining": self.queue_remaining()}},
                    "sid": sid}}))
                if self.client_id == sid and self.last_node_id is not None:
                    await self._send(ws, json.dumps(
                        {"type": "executing", "data": {"node": self.last_node_id}}))
            await self._receive(ws, sid)
        finally:
            # As the real server: removes whatever is registered under this id now, even a
            # newer socket that reused it (a client must not close its old socket late).
            self.sockets.pop(sid, None)
            self.metadata.pop(sid, None)
            self.requests.pop(ws, None)
        return ws

    async def _receive(self, ws: web.WebSocketResponse, sid: str) -> None:
        first = True
        async for msg in ws:
            if msg.type == WSMsgType.PING:
                if not self.faults.ws_stalled:
                    await ws.pong(msg.data)
            elif msg.type == WSMsgType.TEXT:
                try:
                    data = json.loads(msg.data)
                except json.JSONDecodeError:
                    log.warning("invalid websocket json from %s", sid)
                    continue
                if first and isinstance(data, dict) and data.get("type") == "feature_flags":
                    flags = data.get("data", {})
                    self.metadata[sid]["feature_flags"] = flags if isinstance(flags, dict) else {}
                    self.emit("feature_flags", dict(SERVER_FEATURES), sid)
                first = False
            elif msg.type == WSMsgType.ERROR:
                log.debug("websocket error: %s", ws.exception())

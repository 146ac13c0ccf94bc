"""The shared websocket on its own, against a minimal local websocket server: the first thing
sent is the feature flags, the clientId is in the URL, and a dropped socket comes back."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from backend.comfy import ComfyClient, ConnectionChanged, StatusMessage


class MiniServer:
    def __init__(self) -> None:
        self.paths: list[str] = []
        self.first_messages: list[Any] = []
        self.connections: list[ServerConnection] = []
        self.connected = asyncio.Event()

    async def handler(self, ws: ServerConnection) -> None:
        self.paths.append(ws.request.path if ws.request else "")
        self.first_messages.append(json.loads(await ws.recv()))
        self.connections.append(ws)
        await ws.send(json.dumps({"type": "status", "data": {
            "status": {"exec_info": {"queue_remaining": len(self.connections)}}, "sid": "x"}}))
        self.connected.set()
        await ws.wait_closed()


async def _until(predicate: Any, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - polling a plain condition in a test
            await asyncio.sleep(0.01)


async def test_socket_announces_flags_and_reconnects_after_a_drop() -> None:
    mini = MiniServer()
    async with serve(mini.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        client = ComfyClient(f"http://127.0.0.1:{port}", client_id="studio-1")
        seen: list[Any] = []
        client.add_listener(seen.append)
        assert not client.connected
        client.open_socket()
        await _until(lambda: client.queue_remaining == 1)
        assert client.connected
        assert mini.paths == ["/ws?clientId=studio-1"]
        assert mini.first_messages == [
            {"type": "feature_flags", "data": {"supports_preview_metadata": True}}]

        await mini.connections[0].close()
        await _until(lambda: ConnectionChanged(False) in seen)
        await _until(lambda: client.queue_remaining == 2)   # reconnected on its own
        assert client.connected and len(mini.first_messages) == 2
        assert seen.index(ConnectionChanged(False)) < len(seen) - 1
        assert StatusMessage(2, "x") in seen

        await client.aclose()
        assert not client.connected
        await asyncio.sleep(0.6)       # past the first backoff: no new connection
        assert len(mini.connections) == 2


async def test_socket_keeps_retrying_until_the_server_appears() -> None:
    mini = MiniServer()
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    client = ComfyClient(f"http://127.0.0.1:{port}")
    try:
        client.open_socket()
        assert not await client._hub.wait_first_attempt(2.0)   # refused, fails fast
        async with serve(mini.handler, "127.0.0.1", port):
            await _until(lambda: client.connected, within=5.0)
            assert mini.paths == [f"/ws?clientId={client.client_id}"]
    finally:
        await client.aclose()

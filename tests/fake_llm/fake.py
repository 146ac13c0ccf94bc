"""`FakeLlm`: an OpenAI-compatible `/v1/chat/completions` stand-in for the LLM router's tests.

Runs on a free port in a background thread with its own loop (like `tests/fake_comfy`), and
answers as told:

    fake = FakeLlm().start()
    fake.answer_decision({"action": "edit", "prompt": "make it night"})   # canned JSON content
    fake.answer_content("not json at all")                                   # garbage content
    fake.answer_body(b"<html>")                                              # garbage body
    fake.answer_status(500)                                                  # an HTTP error
    fake.delay_s = 10.0                                                      # slow
    fake.stop()                                                              # down (port closed)
    fake.requests                                                            # bodies received
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")


@dataclass
class Received:
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class Behaviour:
    status: int = 200
    content: str = '{"action": "help", "prompt": "", "reason": "default"}'
    raw_body: bytes | None = None  # sent as is instead of a chat.completion


@dataclass
class FakeLlm:
    host: str = "127.0.0.1"
    port: int = 0
    delay_s: float = 0.0
    behaviour: Behaviour = field(default_factory=Behaviour)
    requests: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # --- what to answer --------------------------------------------------------------------

    def answer_decision(self, decision: dict[str, Any]) -> None:
        self.behaviour = Behaviour(content=json.dumps(decision))

    def answer_content(self, content: str) -> None:
        self.behaviour = Behaviour(content=content)

    def answer_body(self, body: bytes, status: int = 200) -> None:
        self.behaviour = Behaviour(status=status, raw_body=body)

    def answer_status(self, status: int) -> None:
        self.behaviour = Behaviour(status=status, raw_body=b'{"error": {"message": "boom"}}')

    # --- where it is, lifecycle ---------------------------------------------------------------

    @property
    def url(self) -> str:
        """The OpenAI base URL, as `STUDIO_ROUTER_URL` takes it."""
        return f"http://{self.host}:{self.port}/v1"

    def __enter__(self) -> FakeLlm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> FakeLlm:
        """Listen (a free port the first time, the same port after `stop`)."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            ready = threading.Event()
            self._thread = threading.Thread(target=self._run_loop, args=(ready,),
                                            name="fake-llm", daemon=True)
            self._thread.start()
            ready.wait()
        self._call(self._start_async())
        return self

    def stop(self) -> None:
        """Go down: the port refuses connections until `start` again."""
        if self._loop is not None:
            self._call(self._stop_async())

    def close(self) -> None:
        if self._loop is not None:
            self._call(self._stop_async())
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._loop.close()
            self._loop = None

    def _run_loop(self, ready: threading.Event) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(ready.set)
        self._loop.run_forever()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _start_async(self) -> None:
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        await site.start()
        if self.port == 0:
            server = site._server  # aiohttp keeps the asyncio server here
            assert isinstance(server, asyncio.Server)
            self.port = server.sockets[0].getsockname()[1]
        self._runner = runner

    async def _stop_async(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # --- the route --------------------------------------------------------------------------

    async def _completions(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(Received(body, dict(request.headers)))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        behaviour = self.behaviour
        if behaviour.raw_body is not None:
            return web.Response(status=behaviour.status, body=behaviour.raw_body,
                                content_type="application/json")
        answer = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", ""),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": behaviour.content}}],
        }
        return web.json_response(answer, status=behaviour.status)

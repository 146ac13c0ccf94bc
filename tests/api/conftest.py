"""The real app (`app.create_app`) in a uvicorn thread on a free port, over one fake ComfyUI.

Module-scoped: building the Gradio UI costs seconds, so a test module shares one studio and one
fake; `clean_fake` puts the fake back (faults, models, classes, delays, up) after each test.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from PIL import Image

from backend.library import LibraryConfig
from backend.settings import Settings
from tests.fake_comfy import FakeComfy
from tests.fake_comfy.state import DEFAULT_MODELS

API_KEY = "sk-test-banana"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningStudio:
    url: str
    settings: Settings
    ctx: Any
    fake: FakeComfy

    @property
    def v1(self) -> str:
        return self.url + "/v1"


def serve(app: Any, port: int) -> tuple[Any, threading.Thread]:
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="studio-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1.0)
            return server, thread
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("the studio did not start")


def api_app(settings: Settings, **context_options: Any) -> Any:
    """The studio's HTTP side without the Gradio UI (seconds cheaper to build): the context
    with its start/stop, the body limits and the routes, as app.create_app wires them."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    from backend import http_api
    from backend.api.body_limits import BodyLimitMiddleware, route_limits
    from backend.context import build_context

    ctx = build_context(settings, **context_options)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        import asyncio

        app.state.loop = asyncio.get_running_loop()    # for on_loop()
        await ctx.start()
        yield
        await ctx.aclose()

    application = FastAPI(lifespan=lifespan)
    application.add_middleware(BodyLimitMiddleware, limits=route_limits(settings))
    application.state.studio_context = ctx
    application.include_router(http_api.router)
    return application


def on_loop(application: Any, coro: Any, timeout: float = 10.0) -> Any:
    """Run a coroutine on an api_app's server loop (the library and desk live there)."""
    import asyncio

    return asyncio.run_coroutine_threadsafe(coro, application.state.loop).result(timeout)


def studio_settings(fake: FakeComfy, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "comfy_url": fake.url,
        "api_key": API_KEY,
        "poll_interval_s": 0.2,
        "max_upload_bytes": 2 * 1024 * 1024,
        "job_timeout_s": 30.0,
        # the data folder tests/conftest.py gives this test (an empty env would mean ./data)
        "library": LibraryConfig.from_env(),
        # No workflow apps (the shipped example would be one more mode in every list);
        # tests/integration/test_workflow_apps.py gives its studio a folder of its own.
        "apps_dir": None,
    }
    values.update(overrides)
    return Settings.from_env({}, **values)


@pytest.fixture(scope="module")
def module_fake() -> Iterator[FakeComfy]:
    fake = FakeComfy().start()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture(scope="module")
def studio(module_fake: FakeComfy) -> Iterator[RunningStudio]:
    import app as app_module

    settings = studio_settings(module_fake)
    port = free_port()
    application = app_module.create_app(settings)
    server, thread = serve(application, port)
    ctx = application.state.studio_context
    try:
        yield RunningStudio(f"http://127.0.0.1:{port}", settings, ctx, module_fake)
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(autouse=True)
def clean_fake(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "module_fake" not in request.fixturenames:
        return
    fake: FakeComfy = request.getfixturevalue("module_fake")
    if not fake.running:
        fake.start()
    fake.clear_faults()
    fake.set_delays(step=0.0, load=0.0, node=0.0)
    fake.config.hidden_classes = set()
    for folder, files in DEFAULT_MODELS.items():
        fake.set_models(folder, files)
    fake.wait_idle(10)


def auth(key: str = API_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def picture(size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A picture with structure, so edits and composites have something to keep."""
    image = Image.new("RGB", size, (40, 90, 160))
    for x in range(0, size[0], 20):
        image.paste((230, 200, 40), (x, 0, x + 6, size[1]))
    return image

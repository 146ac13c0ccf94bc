"""One fake ComfyUI and one real studio app for the whole matrix folder (building the Gradio
UI costs seconds); every test leaves the fake as it found it.

The app is started while the fake is down, so the first thing the matrix records is how the
studio behaves when ComfyUI is not there at boot (`MatrixStudio.boot`, checked in
test_faults.py); the fake comes up right after.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from backend.library import LibraryConfig
from backend.settings import Settings
from tests.fake_comfy import FakeComfy
from tests.fake_comfy.state import DEFAULT_MODELS
from tests.matrix.surfaces import API_KEY, UISession, serve

# Small client timings so faults resolve in about a second instead of a minute; the job
# deadline stays long enough that nothing healthy ever hits it.
CLIENT_TIMINGS = {"unreachable_after_s": 1.0, "stall_poll_s": 0.5, "down_poll_s": 0.2}
MAX_UPLOAD_BYTES = 2 * 1024 * 1024


@dataclass
class MatrixStudio:
    url: str
    settings: Settings
    ctx: Any
    fake: FakeComfy
    boot: dict[str, Any] = field(default_factory=dict)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_KEY}"}

    def generate(self, timeout: float = 60, **body: Any) -> httpx.Response:
        body = {"prompt": "a lighthouse", "size": "256x256", "steps": 2, **body}
        return httpx.post(self.url + "/v1/images/generations", json=body,
                          headers=self.headers(), timeout=timeout)

    def edit(self, files: list[tuple[str, tuple[str, bytes, str]]], timeout: float = 60,
             **data: Any) -> httpx.Response:
        data = {"prompt": "make it brighter", "steps": "2", **data}
        return httpx.post(self.url + "/v1/images/edits", files=files, data=data,
                          headers=self.headers(), timeout=timeout)


def _observe_boot(url: str, headers: dict[str, str]) -> dict[str, Any]:
    """What a person and a client see from a studio whose ComfyUI is not running."""
    page = httpx.get(url + "/", timeout=30)
    health = httpx.get(url + "/healthz", timeout=30)
    started = time.monotonic()
    job = httpx.post(url + "/v1/images/generations", headers=headers, timeout=60,
                     json={"prompt": "x", "size": "256x256", "steps": 1})
    return {"page": page.status_code, "healthz": health.status_code,
            "healthz_body": health.text, "job": job.status_code, "job_body": job.json(),
            "job_s": time.monotonic() - started}


@pytest.fixture(scope="session")
def matrix_fake() -> Iterator[FakeComfy]:
    fake = FakeComfy().start()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture(scope="session")
def studio(matrix_fake: FakeComfy,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[MatrixStudio]:
    import app as app_module

    # Each Gradio session keeps its own library (a gradio_client session has no browser id):
    # the isolation rows check that two sessions never see each other's results.
    env = {"STUDIO_LIBRARY": "per-browser",
           "STUDIO_DATA_DIR": str(tmp_path_factory.mktemp("matrix-data"))}
    settings = Settings.from_env(
        env, comfy_url=matrix_fake.url, api_key=API_KEY, poll_interval_s=0.5,
        max_upload_bytes=MAX_UPLOAD_BYTES, job_timeout_s=30.0,
        max_sampling_pixels=256 * 256,   # the fake's numpy work stays tiny
        library=LibraryConfig.from_env(),  # tests/conftest.py's data folder, not ./data
    )
    matrix_fake.stop()
    application = app_module.create_app(settings)
    ctx = application.state.studio_context
    for name, value in CLIENT_TIMINGS.items():
        setattr(ctx.client, name, value)
    url, server, thread = serve(application)
    running = MatrixStudio(url, settings, ctx, matrix_fake)
    try:
        running.boot = _observe_boot(url, running.headers())
        ui = UISession(url)
        running.boot["ui"] = ui.run("generate", prompt="x", width=256, height=256, steps=1)
        ui.close()
    finally:
        matrix_fake.start()
    try:
        yield running
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def ui(studio: MatrixStudio) -> Iterator[UISession]:
    """One Gradio session for the folder (closing one costs a second: its heartbeat thread);
    test_isolation.py makes its own two."""
    session = UISession(studio.url)
    try:
        yield session
    finally:
        session.close()


@pytest.fixture(autouse=True)
def reset_fake(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test: the fake up, no faults or delays, every class and model back."""
    yield
    if "matrix_fake" not in request.fixturenames:
        return
    fake: FakeComfy = request.getfixturevalue("matrix_fake")
    if not fake.running:
        fake.start()
    fake.clear_faults()
    fake.set_delays(step=0.0, load=0.0, node=0.0)
    fake.show_classes()
    for folder, files in DEFAULT_MODELS.items():
        fake.set_models(folder, files)
    assert fake.wait_idle(10), "a prompt was still running after the test"

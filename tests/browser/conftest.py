"""Browser tests: Debian's chromium (Playwright, sync API) against the real studio app served
by uvicorn in a thread, talking to the fake ComfyUI over real HTTP + websocket.

One browser, one studio and one fake for the whole folder; a fresh browser context (so a fresh
Gradio session and history) per test. Skips cleanly when chromium is missing (`make test`
installs it).

The fixtures are package-scoped, not session-scoped, on purpose: sync Playwright keeps an
event loop running in the main thread while it is open, and pytest-asyncio cannot run the
async tests of the other folders until it is closed.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# A Gradio cache folder of this run's own (the system's is shared with other processes): the
# tests look at what the studio writes there.
os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="studio-browser-gradio-"))

import contextlib  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import httpx  # noqa: E402
import pytest  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from tests.fake_comfy import FakeComfy  # noqa: E402

# Generous waits: CI runs these next to other suites on 2 cores, where an upload into the
# WebGL editor can take several seconds. A wait ends as soon as its condition holds.
EXPECT_TIMEOUT_MS = 20_000

CHROMIUM = os.environ.get("STUDIO_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags chromium tries to reach outside hosts.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1440, "height": 900}
# Fast but visible: a 20-step run takes about a second, previews and progress included.
STEP_DELAY = 0.04
LOAD_DELAY = 0.2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="package")
def chromium_path() -> str:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"chromium not installed at {CHROMIUM} (make test installs it)")
    return CHROMIUM


@pytest.fixture(scope="package")
def fake(chromium_path: str) -> Iterator[FakeComfy]:
    server = FakeComfy(step_delay=STEP_DELAY, load_delay=LOAD_DELAY).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="package")
def studio_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package studio's data folder (its library.db: a test may read what was saved)."""
    return tmp_path_factory.mktemp("studio-data")


@pytest.fixture(scope="package")
def studio_url(fake: FakeComfy, studio_data_dir: Path, workflows_dir: Path) -> Iterator[str]:
    from backend.settings import Settings

    # An empty environment: the developer's STUDIO_* variables do not leak into the test;
    # the library starts empty, in a folder of its own; the templates are a copy a test may
    # add a variant to.
    env = {"STUDIO_DATA_DIR": str(studio_data_dir),
           "STUDIO_WORKFLOWS_DIR": str(workflows_dir)}
    with serve(Settings.from_env(env, comfy_url=fake.url, poll_interval_s=0.5)) as url:
        yield url


@pytest.fixture(scope="package")
def workflows_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from backend.settings import PROJECT_ROOT

    folder = tmp_path_factory.mktemp("workflows")
    for template in (PROJECT_ROOT / "workflows").glob("*.json"):
        shutil.copy(template, folder / template.name)
    return folder


@contextlib.contextmanager
def serve(settings) -> Iterator[str]:
    """The studio app under uvicorn in a thread; yields its URL."""
    import uvicorn

    import app as appmod

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(appmod.create_app(settings), host="127.0.0.1", port=port,
                       log_level="warning", timeout_graceful_shutdown=2)
    )
    thread = threading.Thread(target=server.run, name="studio", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the studio did not start")
        time.sleep(0.2)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture(scope="package")
def browser(chromium_path: str):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_FLAGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def page(browser, studio_url: str, fake: FakeComfy, request, tmp_path: Path):
    fake.clear_faults()
    fake.set_delays(step=STEP_DELAY, load=LOAD_DELAY)
    fake.set_preview_method("auto")
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.set_default_timeout(30_000)
    pg = context.new_page()
    console: list[str] = []
    pg.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    pg.goto(studio_url)
    pg.locator("#mode-tabs").wait_for()
    pg.locator("#comfy_state").wait_for()
    try:
        yield pg
    finally:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            # What the page looked like, for whoever reads the CI log.
            shot = tmp_path / "failure.png"
            pg.screenshot(path=str(shot), full_page=True)
            print(f"\nscreenshot: {shot}\nbrowser console:\n" + "\n".join(console[-30:]))
        context.close()


@pytest.fixture(scope="session")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small, distinct input pictures (a landscape, a portrait, a textured one)."""
    folder = tmp_path_factory.mktemp("pictures")
    scene = Image.new("RGB", (320, 240), (70, 130, 180))
    draw = ImageDraw.Draw(scene)
    draw.ellipse((110, 60, 210, 160), fill=(240, 200, 60))
    draw.rectangle((0, 200, 320, 240), fill=(60, 160, 80))
    portrait = Image.new("RGB", (192, 256), (200, 90, 60))
    ImageDraw.Draw(portrait).rectangle((40, 60, 150, 200), fill=(30, 30, 90))
    # A gradient, so any pixel the studio touches outside the mask would show.
    texture = Image.linear_gradient("L").resize((320, 240)).convert("RGB")
    paths = {}
    for name, image in (("scene", scene), ("portrait", portrait), ("texture", texture)):
        paths[name] = folder / f"{name}.png"
        image.save(paths[name])
    return paths

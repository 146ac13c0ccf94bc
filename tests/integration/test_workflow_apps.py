"""A workflow app dropped into the apps folder of a RUNNING studio (LoadImage #image →
ImageBlur "Blur #param:blur_radius" → SaveImage #output, core nodes only) becomes an API
model that blurs, is ready in /healthz, and lands in the library like any mode; a broken file
shows as not ready with its reason; a removed file goes away. (The tab: tests/browser/
test_apps.py.)"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.api.conftest import (
    API_KEY,
    RunningStudio,
    api_app,
    auth,
    free_port,
    png_bytes,
    serve,
    studio_settings,
)
from tests.fake_comfy import FakeComfy
from tests.unit.test_app_files import blur

pytestmark = pytest.mark.timeout(60)
T = TypeVar("T")


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningStudio, Path]]:
    apps = tmp_path_factory.mktemp("apps")
    fake = FakeComfy().start()
    settings = studio_settings(fake, apps_dir=apps, apps_poll_s=0.05)
    application = api_app(settings)
    port = free_port()
    server, thread = serve(application, port)
    try:
        yield RunningStudio(f"http://127.0.0.1:{port}", settings,
                            application.state.studio_context, fake), apps
    finally:
        server.should_exit = True
        thread.join(10)
        fake.close()


def eventually(probe: Callable[[], T | None], timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.05)


def on_loop(running: RunningStudio, coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run_coroutine_threadsafe(coro, running.ctx.monitor._task.get_loop()).result(10)


def model_ids(studio: RunningStudio) -> list[str]:
    body = httpx.get(studio.v1 + "/models", headers=auth(), timeout=10).json()
    return [m["id"] for m in body["data"]]


def health_of(studio: RunningStudio, mode: str) -> dict[str, object] | None:
    modes = httpx.get(studio.url + "/healthz?fresh=1", timeout=10).json()["modes"]
    entry = modes.get(mode)
    return entry if isinstance(entry, dict) and entry.get("ready") is not None else None


def picture() -> Image.Image:
    image = Image.new("RGB", (64, 48), (20, 20, 20))
    image.paste((240, 240, 240), (24, 0, 40, 48))     # a sharp bright bar
    return image


def gaussian_blur(image: Image.Image, radius: int, sigma: float) -> np.ndarray:
    """ComfyUI's ImageBlur written out: a (2r+1)-tap Gaussian over [-1, 1] (sigma is in
    units of the radius), reflect padding, per axis."""
    x = np.linspace(-1.0, 1.0, 2 * radius + 1)
    kernel = np.exp(-(x**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    arr = np.asarray(image, np.float64) / 255.0
    padded = np.pad(arr, ((radius, radius), (radius, radius), (0, 0)), mode="reflect")
    h, w = arr.shape[:2]
    rows = sum(kernel[i] * padded[i:i + h] for i in range(kernel.size))
    out = sum(kernel[i] * rows[:, i:i + w] for i in range(kernel.size))
    return np.clip(np.asarray(out) * 255.0, 0, 255)


def edit(studio: RunningStudio, model: str, **fields: str) -> httpx.Response:
    return httpx.post(
        studio.v1 + "/images/edits", headers={"Authorization": f"Bearer {API_KEY}"},
        files=[("image", ("p.png", png_bytes(picture()), "image/png"))],
        data={"model": model, **fields}, timeout=30,
    )


def test_a_dropped_workflow_becomes_a_model_that_blurs(
    studio: tuple[RunningStudio, Path],
) -> None:
    running, apps = studio
    assert "app-blur" not in model_ids(running)
    (apps / "blur.json").write_text(json.dumps(blur()), encoding="utf-8")
    eventually(lambda: True if "app-blur" in model_ids(running) else None)
    assert eventually(lambda: health_of(running, "app-blur")) == {"ready": True, "missing": ""}

    response = edit(running, "app-blur", blur_radius="4")
    assert response.status_code == 200, response.text
    item = response.json()["data"][0]
    result = Image.open(io.BytesIO(base64.b64decode(item["b64_json"]))).convert("RGB")
    assert result.size == picture().size
    got = np.asarray(result, np.float64)
    assert np.abs(got - gaussian_blur(picture(), 4, 1.0)).max() <= 2
    assert np.abs(got - np.asarray(picture(), np.float64)).max() > 40, "it did blur"

    assert np.abs(got - gaussian_blur(picture(), 1, 1.0)).max() > 10, "with the radius sent"

    # Kept like any mode's result: its mode, its parameter, its input picture.
    kept = on_loop(running, running.ctx.library.find_any(item["id"]))
    assert kept.mode == "app-blur" and kept.params["blur_radius"] == 4
    assert [i.role for i in kept.inputs] == ["image"]

    out_of_range = edit(running, "app-blur", blur_radius="99")
    assert out_of_range.status_code == 400
    assert "between 1 and 31" in out_of_range.json()["error"]["message"]


def test_a_broken_app_is_not_ready_with_its_reason_and_a_removed_one_goes(
    studio: tuple[RunningStudio, Path],
) -> None:
    running, apps = studio
    (apps / "typo.json").write_text(json.dumps(blur(title="Blur #radius")), encoding="utf-8")
    health = eventually(lambda: health_of(running, "app-typo"))
    assert health["ready"] is False
    assert "typo.json" in str(health["missing"]) and "unknown role #radius" in str(
        health["missing"])
    assert "app-typo" not in model_ids(running)

    (apps / "typo.json").write_text(json.dumps(blur()), encoding="utf-8")   # fixed in place
    assert eventually(lambda: health_of(running, "app-typo") if health_of(
        running, "app-typo") == {"ready": True, "missing": ""} else None)
    (apps / "typo.json").unlink()
    eventually(lambda: True if "app-typo" not in model_ids(running) else None)
    eventually(lambda: True if "app-typo" not in httpx.get(
        running.url + "/healthz?fresh=1", timeout=10).json()["modes"] else None)

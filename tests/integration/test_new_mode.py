"""Adding a mode = a template + one ModeSpec: a throwaway mode declared HERE (LoadImage #image
→ ImageInvert → SaveImage #output, core nodes the fake runs) and registered at runtime shows
up everywhere the built-in ones do — /v1/models, readiness in the monitor and /healthz,
metrics labels, warm-up, a generic tab (and a send-to button) in the page — and runs against
the fake through studio.run, the API and the UI. docs/modes.md walks through the same steps.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import shutil
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import httpx
import numpy as np
import pytest
from PIL import Image, ImageOps

from backend.events import Finished
from backend.modes import (
    REGISTRY,
    ApiInput,
    ApiRoute,
    ApiSpec,
    InputKind,
    ModeInput,
    ModeSpec,
    SendTo,
    WarmupInputs,
)
from backend.operations.base import (
    Operation,
    Prepared,
    check_common,
    check_image_present,
    resolve_seed,
)
from backend.operations.families import ModelFamily
from backend.operations.inputs import load_input
from backend.requests import ImageInput, RequestBase
from backend.settings import PROJECT_ROOT, Settings
from backend.warmup import warm_up
from tests.api.conftest import API_KEY, RunningStudio, auth, free_port, serve, studio_settings
from tests.fake_comfy import FakeComfy
from tests.matrix.surfaces import UISession

pytestmark = pytest.mark.timeout(120)
T = TypeVar("T")

# --- the mode, as a module in backend/modes/ would declare it -------------------------------
NAME = "invert"


@dataclass(frozen=True)
class InvertRequest(RequestBase):
    mode: ClassVar[str] = NAME
    image: ImageInput


class InvertOperation(Operation[InvertRequest]):
    def validate(self, request: InvertRequest, settings: Settings) -> None:
        check_common(request)
        check_image_present(request.image)

    def prepare(self, request: InvertRequest, settings: Settings) -> Prepared:
        notes: list[str] = []
        source = load_input(request.image, settings, notes, upscale_small=False)
        return Prepared(
            mode=NAME, seed=resolve_seed(request.seed), uploads={"image": source.png()},
            values={}, work_size=source.work.size, notes=tuple(notes),
        )


SPEC = ModeSpec(
    name=NAME,
    title="Invert",
    request_type=InvertRequest,
    operation=InvertOperation(),
    roles=frozenset({"image", "output"}),
    family=ModelFamily("no model", lambda settings: {}),
    peak_vram_gb=0.5,
    inputs=(ModeInput("image", InputKind.IMAGE, "Picture"),),
    warmup=lambda inputs: InvertRequest(image=inputs.image, seed=0),
    order=90,
    api=ApiSpec(models=("test-invert",), route=ApiRoute.EDITS,
                build=lambda call: InvertRequest(image=call.images[0])),
    send_to=SendTo("Invert", 9),
)
TEMPLATE = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"},
          "_meta": {"title": "Picture #image"}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"},
          "_meta": {"title": "Result #output"}},
}


# --- a studio with the mode ------------------------------------------------------------------
@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStudio]:
    import app as app_module

    workflows = tmp_path_factory.mktemp("workflows")
    for path in (PROJECT_ROOT / "workflows").glob("*.json"):
        shutil.copy(path, workflows / path.name)
    (workflows / f"{NAME}.json").write_text(json.dumps(TEMPLATE), encoding="utf-8")
    registry = REGISTRY.copy()
    registry.register(SPEC)
    fake = FakeComfy().start()
    settings = studio_settings(fake, workflows_dir=workflows)
    application = app_module.create_app(settings, registry)
    port = free_port()
    server, thread = serve(application, port)
    try:
        yield RunningStudio(f"http://127.0.0.1:{port}", settings, application.state.studio_context,
                            fake)
    finally:
        server.should_exit = True
        thread.join(10)
        fake.close()


def picture() -> Image.Image:
    image = Image.new("RGB", (96, 64), (30, 140, 220))
    image.paste((250, 200, 10), (10, 10, 40, 50))
    return image


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def assert_inverted(result: Image.Image, source: Image.Image) -> None:
    expected = ImageOps.invert(source.convert("RGB"))
    got = np.asarray(result.convert("RGB").resize(expected.size), np.int16)
    assert np.abs(got - np.asarray(expected, np.int16)).max() <= 2


def on_server(studio: RunningStudio, job: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on the server's loop (where the studio's client lives)."""
    task = studio.ctx.monitor._task
    assert task is not None, "the app's lifespan starts the monitor"
    return asyncio.run_coroutine_threadsafe(job, task.get_loop()).result(60)


def metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and ",".join(sorted(line[line.index("{") + 1:
                                                             line.index("}")].split(","))) == want:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# --- it shows up everywhere ------------------------------------------------------------------
def test_it_is_an_api_model(studio: RunningStudio) -> None:
    body = httpx.get(studio.v1 + "/models", headers=auth(), timeout=10).json()
    assert "test-invert" in [m["id"] for m in body["data"]]


def test_it_is_ready_in_the_monitor_and_healthz(studio: RunningStudio) -> None:
    health = httpx.get(studio.url + "/healthz", timeout=30).json()
    assert health["modes"][NAME] == {"ready": True, "missing": ""}
    status = studio.ctx.monitor.snapshot().modes[NAME]
    assert status.ready is True and status.peak_vram_gb == 0.5


def test_it_has_a_generic_tab_and_a_send_to_button(studio: RunningStudio) -> None:
    config = httpx.get(studio.url + "/config", timeout=30).json()
    elem_ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
    assert {f"tab_{NAME}", f"{NAME}_image", f"{NAME}_run", f"{NAME}_result"} <= elem_ids
    assert f"edit_send_{NAME}" in elem_ids


def test_it_runs_through_studio_run(studio: RunningStudio) -> None:
    async def job() -> Finished:
        async for event in studio.ctx.studio.run(InvertRequest(image=png(picture()))):
            if isinstance(event, Finished):
                return event
        raise AssertionError("no result")

    finished = on_server(studio, job())
    assert finished.mode == NAME
    assert_inverted(finished.images[0], picture())


def test_it_runs_through_the_api_and_is_counted(studio: RunningStudio) -> None:
    before = metric(httpx.get(studio.url + "/metrics", timeout=10).text,
                    "studio_jobs_finished_total", mode=NAME, surface="api")
    response = httpx.post(
        studio.v1 + "/images/edits", headers={"Authorization": f"Bearer {API_KEY}"},
        files=[("image", ("p.png", png(picture()), "image/png"))],
        data={"model": "test-invert"}, timeout=60,
    )
    assert response.status_code == 200, response.text
    result = Image.open(io.BytesIO(base64.b64decode(response.json()["data"][0]["b64_json"])))
    assert_inverted(result, picture())
    after = metric(httpx.get(studio.url + "/metrics", timeout=10).text,
                   "studio_jobs_finished_total", mode=NAME, surface="api")
    assert after == before + 1


def test_it_runs_through_its_generic_tab(studio: RunningStudio) -> None:
    ui = UISession(studio.url)
    try:
        shown = ui.run(NAME, image=(png(picture()), "p.png"))
        assert shown.result_url, shown
        assert_inverted(ui.fetch(shown.result_url), picture())
    finally:
        ui.close()


def test_it_warms_up_and_cli_jobs_are_counted(studio: RunningStudio) -> None:
    results = on_server(studio, warm_up(studio.ctx.studio, [NAME], surface="cli"))
    assert [(r.mode, r.ok) for r in results] == [(NAME, True)]
    text = httpx.get(studio.url + "/metrics", timeout=10).text
    assert metric(text, "studio_jobs_finished_total", mode=NAME, surface="cli") == 1


def test_it_can_be_unregistered_at_runtime(studio: RunningStudio) -> None:
    studio.ctx.registry.unregister(NAME)
    body = httpx.get(studio.v1 + "/models", headers=auth(), timeout=10).json()
    assert "test-invert" not in [m["id"] for m in body["data"]]
    snap = on_server(studio, studio.ctx.monitor.refresh_now())
    assert NAME not in snap.modes
    assert NAME not in REGISTRY, "the process's own registry was never touched"


def test_the_warmup_inputs_are_what_modes_may_use() -> None:
    inputs = WarmupInputs.sample()
    assert inputs.image.size == inputs.mask.size == (256, 256)
    assert isinstance(SPEC.warmup(inputs), InvertRequest)


def test_a_call_builds_its_request() -> None:
    assert SPEC.api is not None
    call = ApiInput({}, "", (b"png",), None, Settings())
    assert SPEC.api.build(call) == InvertRequest(image=b"png")

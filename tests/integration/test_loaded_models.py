"""What the studio believes ComfyUI holds, against the fake over real HTTP + websocket
(issue 10 items 3, 4, 13): only a job that got past its model loaders changes it; a restart
or a reconnect clears it; readiness is unknown while ComfyUI is down; a CPU device is RAM."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from PIL import Image

from backend.comfy import ComfyClient
from backend.jobs import Failed, Finished, ModelsLoaded, Started, Studio
from backend.metrics import StudioMetrics
from backend.modes.edit import EditRequest
from backend.modes.generate import GenerateRequest
from backend.modes.remove_background import RemoveBackgroundRequest
from backend.monitor import Monitor
from backend.settings import Settings
from backend.workflows import TemplateLibrary
from tests.fake_comfy import FakeComfy

pytestmark = pytest.mark.timeout(60)
HANG_GUARD_S = 15.0


@pytest.fixture
async def client(fake_comfy: FakeComfy) -> AsyncIterator[ComfyClient]:
    client = ComfyClient(fake_comfy.url)
    try:
        yield client
    finally:
        await client.aclose()


class Setup:
    def __init__(self, fake: FakeComfy, client: ComfyClient) -> None:
        self.settings = Settings(comfy_url=fake.url, job_timeout_s=30.0,
                                 max_sampling_pixels=256 * 256)
        library = TemplateLibrary(self.settings.workflows_dir)
        self.metrics = StudioMetrics()
        self.studio = Studio(client, self.settings, library, observers=[self.metrics])
        self.monitor = Monitor(client, self.settings, library, studio=self.studio)

    def swaps(self, mode: str) -> float:
        value = self.metrics.registry.get_sample_value("studio_model_swaps_total",
                                                       {"mode": mode})
        return value or 0.0

    async def run(self, request: Any) -> list[Any]:
        return [event async for event in self.studio.run(request)]


@pytest.fixture
async def setup(fake_comfy: FakeComfy, client: ComfyClient) -> AsyncIterator[Setup]:
    made = Setup(fake_comfy, client)
    try:
        yield made
    finally:
        await made.monitor.aclose()


def generate() -> GenerateRequest:
    return GenerateRequest("a lighthouse", 256, 256, steps=2)


def picture() -> Image.Image:
    image = Image.new("RGB", (320, 240), (40, 90, 160))
    image.paste((230, 200, 30), (80, 60, 240, 180))
    return image


def started(events: list[Any]) -> Started:
    return next(e for e in events if isinstance(e, Started))


async def test_a_generate_that_fails_in_vaeloader_loads_nothing(
    setup: Setup, fake_comfy: FakeComfy
) -> None:
    """A broken VAE file: the job fails in VAELoader (after the sampler, as ComfyUI orders
    the graph). Before: the sidebar said the generation model "is likely in memory", the fit
    note "is already loaded", and every failed job counted a model swap."""
    fake_comfy.fail_at("VAELoader", "RuntimeError", "Error while deserializing header")
    for _ in range(2):
        events = await setup.run(generate())
        assert isinstance(events[-1], Failed), events[-1]
        assert not any(isinstance(e, ModelsLoaded) for e in events)
        assert started(events).loading_models is True     # nothing was ever loaded
    assert setup.studio.loaded is None and setup.studio.loaded_file is None
    snap = await setup.monitor.refresh_now()
    assert snap.last_mode is None and snap.loaded_file is None and snap.loaded_family is None
    assert "already loaded" not in snap.modes["generate"].note
    assert setup.swaps("generate") == 0

    fake_comfy.clear_faults()
    events = await setup.run(generate())
    done = events[-1]
    assert isinstance(done, Finished) and done.models_loaded
    loaded = next(e for e in events if isinstance(e, ModelsLoaded))
    assert loaded.swapped and loaded.model == setup.settings.models.generate_unet
    assert setup.swaps("generate") == 1
    snap = await setup.monitor.refresh_now()
    assert snap.loaded_family == "generation model"
    assert snap.loaded_file == setup.settings.models.generate_unet
    assert "already loaded" in snap.modes["generate"].note

    events = await setup.run(generate())
    assert started(events).loading_models is False and not events[-1].models_loaded
    assert setup.swaps("generate") == 1


async def test_after_remove_background_the_loaded_model_is_birefnet(setup: Setup) -> None:
    assert isinstance((await setup.run(EditRequest(picture(), "make it night", steps=2)))[-1],
                      Finished)
    assert (await setup.monitor.refresh_now()).loaded_family == "edit model"
    events = await setup.run(RemoveBackgroundRequest(picture()))
    assert isinstance(events[-1], Finished)
    loaded = next(e for e in events if isinstance(e, ModelsLoaded))
    assert loaded.family == "background-removal model" and not loaded.swapped
    snap = await setup.monitor.refresh_now()
    assert snap.last_mode == "remove_background"
    assert snap.loaded_family == "background-removal model"
    assert snap.loaded_file == setup.settings.models.birefnet
    # BiRefNet loads next to the edit model: the next edit does not load it again.
    events = await setup.run(EditRequest(picture(), "make it day", steps=2))
    assert started(events).loading_models is False
    assert setup.swaps("edit") == 1 and setup.swaps("remove_background") == 0


async def test_a_restart_forgets_what_was_loaded(
    setup: Setup, fake_comfy: FakeComfy, client: ComfyClient
) -> None:
    """Before: after ComfyUI restarted, the next run said the models were warm and the
    sidebar that one "is likely in memory"."""
    assert isinstance((await setup.run(generate()))[-1], Finished)
    assert setup.studio.loaded is not None
    fake_comfy.restart()
    async with asyncio.timeout(HANG_GUARD_S):
        while client.epoch < 2:  # noqa: ASYNC110 - polling a counter
            await asyncio.sleep(0.02)
    snap = await setup.monitor.refresh_now()
    assert snap.last_mode is None and snap.loaded_file is None
    events = await setup.run(generate())
    assert started(events).loading_models is True
    assert isinstance(events[-1], Finished) and events[-1].models_loaded
    assert setup.swaps("generate") == 2


async def test_readiness_is_unknown_while_comfyui_is_down(
    setup: Setup, fake_comfy: FakeComfy
) -> None:
    """Before: every mode stayed "ready" in the sidebar and /healthz while ComfyUI was down."""
    snap = await setup.monitor.refresh_now()
    assert snap.online and all(s.ready is True for s in snap.modes.values())
    assert isinstance((await setup.run(generate()))[-1], Finished)
    fake_comfy.stop()
    snap = await setup.monitor.refresh_now()
    assert not snap.online
    assert all(s.ready is None and s.missing == "" for s in snap.modes.values())
    assert snap.last_mode is None            # whatever it held may be gone
    fake_comfy.start()
    snap = await setup.monitor.refresh_now()
    assert snap.online and all(s.ready is True for s in snap.modes.values())


async def test_a_cpu_comfyui_is_ram_everywhere() -> None:
    """`--cpu`: the device is the machine's RAM; nothing loaded means nothing to free."""
    fake = FakeComfy(cpu=True).start()
    client = ComfyClient(fake.url)
    made = Setup(fake, client)
    try:
        snap = await made.monitor.refresh_now()
        assert snap.memory == "RAM" and snap.comfy_vram_held is None
        for status in snap.modes.values():
            assert "VRAM" not in status.note and "GPU" not in status.note, status.note
            assert "ComfyUI frees" not in status.note, status.note
        assert "VRAM" not in await made.monitor.free_vram()
    finally:
        await made.monitor.aclose()
        await client.aclose()
        fake.close()

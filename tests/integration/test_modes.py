"""Every mode through `studio.run` against the fake ComfyUI over real HTTP + websocket:
the graph validates, events arrive in order, results have the right size and mode, masked
modes leave every pixel outside the mask bit-identical, and failures have the right kind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

from backend.comfy import ComfyClient
from backend.comfy.validation import validate_prompt
from backend.jobs import Failed, Finished, Preview, Progress, Queued, Started, Studio
from backend.modes import REGISTRY
from backend.modes.edit import EditRequest
from backend.modes.generate import GenerateRequest
from backend.modes.inpaint import InpaintRequest
from backend.modes.multiref import MultiRefRequest
from backend.modes.outpaint import OutpaintRequest
from backend.modes.region_edit import RegionEditRequest
from backend.modes.remove_background import RemoveBackgroundRequest
from backend.operations.sizing import outpaint_geometry, working_size
from backend.preflight import check_modes
from backend.settings import Settings
from backend.workflows import TemplateLibrary
from tests.fake_comfy import FakeComfy

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def client(fake_comfy: FakeComfy) -> AsyncIterator[ComfyClient]:
    client = ComfyClient(fake_comfy.url)
    try:
        yield client
    finally:
        await client.aclose()


# A smaller sampling budget than the default ~1 MP keeps the fake's numpy work quick while
# every input below is still scaled for the model and composited back at full size.
BUDGET = 512 * 512


def make_studio(fake: FakeComfy, client: ComfyClient, **overrides: Any) -> Studio:
    overrides.setdefault("max_sampling_pixels", BUDGET)
    settings = Settings(comfy_url=fake.url, job_timeout_s=30.0, **overrides)
    return Studio(client, settings, TemplateLibrary(settings.workflows_dir))


@pytest.fixture
def studio(fake_comfy: FakeComfy, client: ComfyClient) -> Studio:
    return make_studio(fake_comfy, client)


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def subject(width: int = 640, height: int = 480) -> Image.Image:
    """A plain background with a coloured block: something to segment and cut out."""
    image = Image.new("RGB", (width, height), (40, 90, 160))
    image.paste((230, 200, 30), (width // 4, height // 4, width * 3 // 4, height * 3 // 4))
    return image


def px(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB")).astype(np.int16)


async def run(studio: Studio, request: Any) -> list[Any]:
    return [event async for event in studio.run(request)]


async def finished(studio: Studio, request: Any, client: ComfyClient) -> Finished:
    """Run to the end and check what every successful job must satisfy."""
    events = await run(studio, request)
    done = events[-1]
    assert isinstance(done, Finished), done
    kinds = [type(e) for e in events]
    assert kinds[0] is Queued and Started in kinds
    assert kinds.index(Started) < kinds.index(Progress)
    assert Finished not in kinds[:-1] and Failed not in kinds
    fractions = [e.fraction for e in events if isinstance(e, Progress)]
    assert fractions == sorted(fractions) and 0 < fractions[-1] <= 1
    # The exact graph we submitted is one the server's validation accepts.
    object_info = await client.object_info()
    assert validate_prompt(done.workflow, object_info).ok
    return done


async def test_generate(studio: Studio, client: ComfyClient) -> None:
    done = await finished(studio, GenerateRequest("a lighthouse", 512, 384, seed=11), client)
    assert [(i.size, i.mode) for i in done.images] == [((512, 384), "RGB")]
    assert done.seed == 11 and done.mode == "generate"


async def test_progress_and_previews_come_before_the_result(
    studio: Studio, client: ComfyClient
) -> None:
    events = await run(studio, GenerateRequest("a lighthouse", 256, 256, steps=6))
    kinds = [type(e) for e in events]
    assert Preview in kinds and kinds.index(Preview) < kinds.index(Finished)
    steps = [(e.step, e.total) for e in events if isinstance(e, Progress) and e.step]
    assert steps and steps[-1] == (6, 6)
    previews = [e.image for e in events if isinstance(e, Preview)]
    assert all(isinstance(p, Image.Image) and p.width > 0 for p in previews)


async def test_edit(studio: Studio, client: ComfyClient) -> None:
    source = subject(800, 600)
    done = await finished(studio, EditRequest(source, "make it night"), client)
    image = done.images[0]
    assert image.mode == "RGB"
    assert image.size == (800, 600), "by default the result is the input's size"
    assert any("resampled to 800×600" in note for note in done.notes)
    model = await finished(studio, EditRequest(source, "make it night", output_size="model"),
                           client)
    assert model.images[0].size == working_size(800, 600, max_pixels=BUDGET) == (592, 432)


async def test_multiref_every_reference_reaches_the_graph_and_matters(
    studio: Studio, client: ComfyClient, fake_comfy: FakeComfy
) -> None:
    a, b, c = subject(), noise(400, 400, 1), noise(400, 400, 2)
    two = await finished(studio, MultiRefRequest((a, b), "combine them", seed=5), client)
    loads = {
        node["_meta"]["title"].split("#")[-1]: node["inputs"]["image"]
        for node in two.workflow.values() if node["class_type"] == "LoadImage"
    }
    assert set(loads) == {"image1", "image2"}  # the unused third slot was pruned
    for name in loads.values():
        assert (fake_comfy.input_dir / name).is_file()
    other = await finished(studio, MultiRefRequest((a, c), "combine them", seed=5), client)
    one = await finished(studio, MultiRefRequest((a,), "combine them", seed=5), client)
    assert not np.array_equal(px(two.images[0]), px(other.images[0]))
    assert not np.array_equal(px(two.images[0]), px(one.images[0]))


async def test_remove_background_is_rgba_at_the_input_size(
    studio: Studio, client: ComfyClient
) -> None:
    source = subject(1600, 1200)  # larger than the sampling budget: alpha scaled back up
    done = await finished(studio, RemoveBackgroundRequest(source), client)
    image = done.images[0]
    assert image.mode == "RGBA" and image.size == source.size
    assert image.getpixel((5, 5))[3] == 0          # background
    assert image.getpixel((800, 600))[3] == 255    # subject, with the input's own pixels
    assert image.getpixel((800, 600))[:3] == source.getpixel((800, 600))


async def test_region_edit_keeps_everything_outside_the_mask(
    studio: Studio, client: ComfyClient
) -> None:
    source = noise(1280, 960, 3)  # scaled for the model, composited at full size
    request = RegionEditRequest(source, "the yellow block", "make it red", grow=6, feather=4)
    done = await finished(studio, request, client)
    image, mask = done.images[0], done.extras["mask"]
    assert image.size == source.size and mask.size == source.size and mask.mode == "L"
    outside = np.asarray(mask) == 0
    assert outside.any() and (~outside).any()
    assert np.array_equal(px(image)[outside], px(source)[outside])
    assert not np.array_equal(px(image)[~outside], px(source)[~outside])


async def test_inpaint_keeps_everything_outside_the_mask(
    studio: Studio, client: ComfyClient
) -> None:
    source = noise(1200, 900, 4)
    painted = Image.new("L", (600, 450), 0)  # any size: scaled to the image
    painted.paste(255, (200, 150, 320, 260))
    done = await finished(studio, InpaintRequest(source, painted, "a cat", grow=4), client)
    image, mask = done.images[0], done.extras["mask"]
    assert image.size == source.size and image.mode == "RGB"
    outside = np.asarray(mask) == 0
    assert np.array_equal(px(image)[outside], px(source)[outside])
    assert not np.array_equal(px(image)[~outside], px(source)[~outside])
    # nothing changed farther than `grow` from what was painted (x 400..640, y 300..520)
    assert np.array_equal(px(image)[:290], px(source)[:290])


async def test_outpaint_pastes_the_input_back_unchanged(
    studio: Studio, client: ComfyClient
) -> None:
    source = noise(640, 480, 5)
    done = await finished(studio, OutpaintRequest(source, left=32, right=96, prompt="more"), client)
    geometry = outpaint_geometry(640, 480, (32, 0, 96, 0), max_pixels=BUDGET)
    image = done.images[0]
    assert image.size == geometry.canvas_full
    left = geometry.pads_full[0]
    assert abs(left - 32) <= 2 and any("16-pixel grid" in line for line in done.notes)
    inner = image.crop((left, 0, left + 640, 480))
    assert np.array_equal(px(inner), px(source))
    assert not np.array_equal(px(image.crop((0, 0, 32, 480))), 0)


async def test_oom_at_the_sampler(studio: Studio, fake_comfy: FakeComfy) -> None:
    fake_comfy.oom_at("KSampler")
    failed = (await run(studio, GenerateRequest("x", 512, 512)))[-1]
    assert isinstance(failed, Failed) and failed.kind == "out_of_memory"
    assert "(KSampler)" in failed.message and "lower the resolution" in failed.message
    assert failed.message.index("lower the resolution") < failed.message.index("GGUF")


async def test_oom_retry_at_a_lower_resolution(
    fake_comfy: FakeComfy, client: ComfyClient
) -> None:
    fake_comfy.oom_at("KSampler", times=1)
    studio = make_studio(fake_comfy, client, oom_retry=True)
    done = (await run(studio, GenerateRequest("x", 1024, 1024)))[-1]
    assert isinstance(done, Finished), done
    assert done.images[0].size == (880, 880)
    assert any("retried once at 880×880" in line for line in done.notes)


async def test_missing_model_file(studio: Studio, fake_comfy: FakeComfy) -> None:
    fake_comfy.set_models("diffusion_models", [])
    failed = (await run(studio, GenerateRequest("x", 512, 512)))[-1]
    assert isinstance(failed, Failed) and failed.kind == "missing_models", failed
    assert Settings().models.generate_unet in failed.message
    assert "models/diffusion_models/" in failed.message


async def test_missing_node_pack(studio: Studio, fake_comfy: FakeComfy) -> None:
    fake_comfy.hide_classes("BiRefNetRMBG")
    failed = (await run(studio, RemoveBackgroundRequest(subject())))[-1]
    # "the server lacks something", like a model file (API 424; issue 10 #15)
    assert isinstance(failed, Failed) and failed.kind == "missing_models", failed
    assert "BiRefNetRMBG" in failed.message and "ComfyUI-RMBG" in failed.message


async def test_region_that_matches_nothing(studio: Studio, fake_comfy: FakeComfy) -> None:
    failed = (await run(studio, RegionEditRequest(subject(), "nothing at all", "x")))[-1]
    assert isinstance(failed, Failed) and failed.kind == "invalid_input", failed
    assert failed.message == "Nothing matched 'nothing at all' — try other words."
    assert fake_comfy.counters["prompts_executed"] == 1  # the edit itself never ran


async def test_closing_the_iterator_mid_run_interrupts_the_prompt(
    studio: Studio, fake_comfy: FakeComfy
) -> None:
    fake_comfy.set_delays(step=0.05)
    events = studio.run(GenerateRequest("x", 256, 256, steps=100))
    prompt_id = None
    async for event in events:
        if isinstance(event, Queued):
            prompt_id = event.prompt_id
        if isinstance(event, Progress) and event.step:
            break
    await events.aclose()
    assert fake_comfy.wait_idle(10)
    assert fake_comfy.counters["interrupts"] >= 1
    entry = fake_comfy.history(prompt_id)
    messages = [m[0] for m in entry[prompt_id]["status"]["messages"]]
    assert "execution_interrupted" in messages


async def test_preflight_names_what_each_mode_lacks(
    fake_comfy: FakeComfy, client: ComfyClient, tmp_path: Any
) -> None:
    settings = Settings(comfy_url=fake_comfy.url)
    library = TemplateLibrary(settings.workflows_dir)
    ready = await check_modes(client, library, settings, REGISTRY)
    assert set(ready) == set(REGISTRY.names()) and all(r.ready for r in ready.values()), ready
    fake_comfy.hide_classes("BiRefNetRMBG")
    fake_comfy.set_models("diffusion_models", [settings.models.generate_unet])
    found = await check_modes(client, library, settings, REGISTRY)
    assert found["generate"].ready
    assert not found["remove_background"].ready
    assert "BiRefNetRMBG (ComfyUI-RMBG pack)" in found["remove_background"].message
    assert not found["edit"].ready
    assert f"diffusion_models/{settings.models.edit_unet}" in found["edit"].message
    empty = await check_modes(client, TemplateLibrary(tmp_path), settings, REGISTRY)
    assert not empty["inpaint"].ready and "inpaint" in empty["inpaint"].message

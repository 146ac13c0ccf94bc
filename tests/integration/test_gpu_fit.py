"""The GPU you have (issue 16), against the fake's simulated device over real HTTP and
websockets, through the whole context (the monitor tells the studio the device's memory
and whether the GGUF variant is installed):

- STUDIO_VARIANT=auto on a 24 GB card with another tenant holding 6 GB runs generate and
  edit with the GGUF variant and says why; on an 80 GB card it runs fp8;
- with STUDIO_OOM_RETRY=on an out-of-memory at the fp8 UNet is handled in the guide's
  order (free ComfyUI's cached models, then GGUF): the job succeeds on GGUF, its notes list
  the steps and /metrics counts them;
- off, the error names this device's remedies, and says RAM on a CPU device.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from PIL import Image

from backend.context import StudioContext, build_context
from backend.events import Failed, Finished, JobEvent
from backend.library import LibraryConfig
from backend.modes.edit import EditRequest
from backend.modes.generate import GenerateRequest
from backend.requests import RequestBase
from backend.settings import Settings
from tests.fake_comfy import FakeComfy

pytestmark = pytest.mark.timeout(60)

FP8_UNET = Settings().models.generate_unet


@contextlib.asynccontextmanager
async def studio(fake: FakeComfy, **overrides: Any) -> AsyncIterator[StudioContext]:
    fake.start()
    values: dict[str, Any] = {
        "comfy_url": fake.url, "poll_interval_s": 0.2, "job_timeout_s": 30.0,
        "max_sampling_pixels": 256 * 256, "library": LibraryConfig.from_env(),
    }
    ctx = build_context(Settings.from_env({}, **{**values, **overrides}), env={})
    try:
        await ctx.library.open()
        yield ctx
    finally:
        await ctx.aclose()
        fake.close()


async def run(ctx: StudioContext, request: RequestBase) -> list[JobEvent]:
    return [event async for event in ctx.studio.run(request, surface="api")]


def loaders(done: Finished) -> set[str]:
    return {n["class_type"] for n in done.workflow.values() if "Loader" in n["class_type"]}


def generate(seed: int = 1) -> GenerateRequest:
    return GenerateRequest("a lighthouse", 256, 256, seed=seed, steps=2)


def edit() -> EditRequest:
    return EditRequest(Image.new("RGB", (256, 256), (30, 90, 160)), "at night", seed=2, steps=2)


async def test_auto_runs_gguf_on_a_shared_24_gb_card_and_fp8_on_80_gb() -> None:
    async with studio(FakeComfy(vram_total_gb=24, other_tenant_gb=6)) as ctx:
        notes = []
        for request in (generate(), edit()):
            done = (await run(ctx, request))[-1]
            assert isinstance(done, Finished), done
            assert loaders(done) == {"UnetLoaderGGUF", "CLIPLoaderGGUF", "VAELoader"}
            notes.append(done.notes[0])
        # (The edit's reading may be the poll's before the generation loaded: what counts,
        # free + what ComfyUI would unload, is the same.)
        assert notes[0] == "GGUF Q4: 17 GB VRAM free, fp8 needs ~30 GB (GGUF ~16 GB)."
        assert notes[1].startswith("GGUF Q4: ") and "fp8 needs ~30 GB" in notes[1]
        # Fresh: the generation model is held now, ComfyUI would unload it for the edit's.
        await ctx.monitor.refresh_now()
        again = (await run(ctx, edit()))[-1]
        assert isinstance(again, Finished) and again.notes[0] == (
            "GGUF Q4: 2 GB VRAM free + 16 GB ComfyUI frees by unloading, fp8 needs ~30 GB "
            "(GGUF ~16 GB).")
        # An explicit choice wins (here fp8, which does not fit: see the next tests).
        forced = (await run(ctx, GenerateRequest("x", 256, 256, seed=3, steps=1,
                                                 variant="default")))[-1]
        assert isinstance(forced, Failed) and forced.kind == "out_of_memory", forced
    async with studio(FakeComfy(vram_total_gb=80)) as ctx:
        done = (await run(ctx, generate()))[-1]
        assert isinstance(done, Finished), done
        assert loaders(done) == {"UNETLoader", "CLIPLoader", "VAELoader"}
        assert done.notes == ("fp8: 79 GB VRAM free, needs ~30 GB.",)


async def test_out_of_memory_at_the_unet_ends_on_gguf_with_the_steps_noted_and_counted(
) -> None:
    fake = FakeComfy()                      # 48 GB: fp8 fits, so auto runs fp8 first
    fake.oom_at(FP8_UNET)                   # every load of the fp8 UNet runs out of memory
    async with studio(fake, oom_retry=True) as ctx:
        done = (await run(ctx, generate()))[-1]
        assert isinstance(done, Finished), done
        assert "UnetLoaderGGUF" in loaders(done)
        assert done.oom_steps == ("free", "gguf")
        assert done.notes[1:] == (
            "Out of memory at 256×256: freed ComfyUI's cached models and retried.",
            "Out of memory with fp8 at 256×256; retried with the GGUF Q4 variant "
            "(~14 GB less).",
        )
        assert fake.counters["frees"] >= 1
        # Out of memory whatever the model (at the sampler): every step, the last one smaller.
        fake.clear_faults()
        fake.oom_at("KSampler", times=3)
        done = (await run(ctx, GenerateRequest("x", 512, 512, seed=4, steps=1)))[-1]
        assert isinstance(done, Finished), done
        assert done.oom_steps == ("free", "gguf", "smaller")
        assert done.notes[-1] == "Out of memory at 512×512; retried once at 448×448."
        assert done.images[0].size == (448, 448) and "UnetLoaderGGUF" in loaders(done)
        metrics = ctx.metrics.render().decode()
        for step, count in (("free", 2), ("gguf", 2), ("smaller", 1)):
            assert f'studio_oom_retries_total{{mode="generate",step="{step}"}} {count}.0' \
                in metrics


async def test_out_of_memory_without_retry_names_this_devices_remedies() -> None:
    # fp8 chosen on a shared 24 GB card: its 21 GB UNet does not fit beside the tenant.
    async with studio(FakeComfy(vram_total_gb=24, other_tenant_gb=6)) as ctx:
        failed = (await run(ctx, GenerateRequest("x", 256, 256, seed=1, steps=1,
                                                 variant="default")))[-1]
    assert isinstance(failed, Failed) and failed.kind == "out_of_memory", failed
    assert failed.message.startswith("ComfyUI ran out of GPU memory in node 1")
    assert "Free VRAM now: 17.4 GB (~13 GB short). Try: 1) lower the resolution" \
        in failed.message
    assert "shrink the other services on this GPU (they hold ~7 GB" in failed.message
    assert "use the GGUF Q4 variant (~14 GB less)" in failed.message


async def test_out_of_memory_on_a_cpu_device_says_ram() -> None:
    fake = FakeComfy(cpu=True)
    fake.oom_at("KSampler")
    async with studio(fake) as ctx:
        failed = (await run(ctx, generate()))[-1]
    assert isinstance(failed, Failed) and failed.kind == "out_of_memory", failed
    assert "ran out of RAM" in failed.message and "GPU" not in failed.message.split(".")[0]
    assert "Free RAM now:" in failed.message and "CUDA_VISIBLE_DEVICES" not in failed.message

"""Device options for sizing tests: the card's size, another tenant on it, and `--cpu`
reported as the recorded CPU server reports it (RAM as "vram")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fake.helpers import (
    FP8_UNET,
    GGUF_CLIP,
    GGUF_UNET,
    qwen_generate,
    submit,
    trace,
)
from tests.fake_comfy import FakeComfy
from tests.fake_comfy.__main__ import fake_from_args, parse_args
from tests.fake_comfy.nodes.models import GGUF_TEXT_ENCODER_GB, GGUF_UNET_GB, VAE_GB

GIB = 1024**3
RECORDED_STATS = trace("trace_misc.json")["GET /system_stats"]["body"]


def _make(**options: Any) -> Iterator[FakeComfy]:
    fake = FakeComfy(**options).start()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def shared_24gb() -> Iterator[FakeComfy]:
    """A 24 GB card with an LLM server holding 6 GB of it."""
    yield from _make(vram_total_gb=24, other_tenant_gb=6)


@pytest.fixture
def cpu_fake() -> Iterator[FakeComfy]:
    yield from _make(cpu=True)


async def _stats(fake: FakeComfy) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=fake.url, timeout=10) as http:
        response = await http.get("/system_stats")
    assert response.status_code == 200
    stats: dict[str, Any] = response.json()
    return stats


def _last_message(fake: FakeComfy, prompt_id: str) -> list[Any]:
    assert fake.wait_idle()
    message: list[Any] = fake.history(prompt_id)[prompt_id]["status"]["messages"][-1]
    return message


async def test_the_default_device_is_unchanged(fake_comfy: FakeComfy) -> None:
    (device,) = (await _stats(fake_comfy))["devices"]
    assert device == {
        "name": "cuda:0 NVIDIA RTX 6000 Ada Generation : cudaMallocAsync", "type": "cuda",
        "index": 0, "vram_total": 48 * GIB, "vram_free": 48 * GIB - int(0.6 * GIB),
        "torch_vram_total": 0, "torch_vram_free": 0}


async def test_another_tenant_takes_free_vram_not_comfyuis_share(
        shared_24gb: FakeComfy) -> None:
    (device,) = (await _stats(shared_24gb))["devices"]
    assert device["vram_total"] == 24 * GIB
    assert device["vram_free"] == 24 * GIB - int(6.6 * GIB)
    assert (device["torch_vram_total"], device["torch_vram_free"]) == (0, 0)
    assert shared_24gb.state()["memory"]["other_tenant"] == 6 * GIB

    async with httpx.AsyncClient(base_url=shared_24gb.url, timeout=10) as http:
        answer = await submit(http, qwen_generate(GGUF_UNET, GGUF_CLIP))
        assert _last_message(shared_24gb, answer["prompt_id"])[0] == "execution_success"
        models_gb = GGUF_UNET_GB + GGUF_TEXT_ENCODER_GB + VAE_GB
        (device,) = (await _stats(shared_24gb))["devices"]
        assert device["vram_free"] == 24 * GIB - int((6.6 + models_gb) * GIB)
        assert device["torch_vram_total"] == int(models_gb * GIB)

        # The fp8 UNet (~21 GB) does not fit next to the tenant: out of memory at its loader.
        answer = await submit(http, qwen_generate(FP8_UNET, GGUF_CLIP, seed=2))
        kind, data = _last_message(shared_24gb, answer["prompt_id"])
        assert (kind, data["node_type"], data["exception_type"]) == (
            "execution_error", "UNETLoader", "torch.OutOfMemoryError")

        # The tenant leaves: it fits (the control route sets it too).
        state = (await http.post("/__fake__/vram", json={"other_tenant_gb": 0})).json()
        assert state["other_tenant"] == 0
        answer = await submit(http, qwen_generate(FP8_UNET, GGUF_CLIP, seed=3))
        assert _last_message(shared_24gb, answer["prompt_id"])[0] == "execution_success"


async def test_cpu_reports_ram_as_the_recorded_cpu_server_does(cpu_fake: FakeComfy) -> None:
    stats = await _stats(cpu_fake)
    assert stats["devices"] == RECORDED_STATS["devices"]
    recorded_argv = list(RECORDED_STATS["system"]["argv"])
    recorded_argv[recorded_argv.index("--port") + 1] = str(cpu_fake.config.port)
    assert stats["system"] == {**RECORDED_STATS["system"], "argv": recorded_argv}

    async with httpx.AsyncClient(base_url=cpu_fake.url, timeout=10) as http:
        answer = await submit(http, qwen_generate(GGUF_UNET, GGUF_CLIP))
    assert _last_message(cpu_fake, answer["prompt_id"])[0] == "execution_success"
    stats = await _stats(cpu_fake)
    (device,) = stats["devices"]
    held = GGUF_UNET_GB + GGUF_TEXT_ENCODER_GB + VAE_GB
    recorded_free = RECORDED_STATS["devices"][0]["vram_free"]
    assert abs(recorded_free - device["vram_free"] - held * GIB) < 2
    assert device["torch_vram_free"] == device["vram_free"] == stats["system"]["ram_free"]
    assert device["torch_vram_total"] == device["vram_total"] == stats["system"]["ram_total"]


def test_command_line_device_options() -> None:
    fake = fake_from_args(parse_args(["--vram-gb", "24", "--other-tenant-gb", "6"]))
    assert (fake.config.vram_total_gb, fake.config.other_tenant_gb, fake.config.cpu) == (
        24.0, 6.0, False)
    fake.close()
    fake = fake_from_args(parse_args(["--cpu"]))
    assert fake.config.cpu and fake.config.vram_total_gb * GIB == RECORDED_STATS["system"][
        "ram_total"]
    fake.close()
    fake = fake_from_args(parse_args([]))
    assert (fake.config.vram_total_gb, fake.config.other_tenant_gb, fake.config.cpu) == (
        48.0, 0.0, False)
    fake.close()

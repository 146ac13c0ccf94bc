"""ComfyClient.execute() against the fake ComfyUI over real HTTP + websocket: progress and
previews arrive, results come back, cached re-runs still yield images, and stopping early
cancels the prompt in ComfyUI (interrupt when running, delete when pending)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import httpx
import pytest
from PIL import Image

from backend.comfy import (
    ComfyClient,
    Executed,
    Executing,
    ExecutionCached,
    ExecutionStart,
    ExecutionSuccess,
    PreviewImage,
    ProgressMessage,
    PromptDone,
    PromptQueued,
)
from tests.fake_comfy import FakeComfy


def _png(color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buffer, "PNG")
    return buffer.getvalue()


def simple_graph(image: str, width: int = 32) -> dict[str, Any]:
    """LoadImage → ImageScale → ImageInvert → SaveImage, like the recorded run."""
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "bilinear",
                                                     "width": width, "height": 24, "crop": "disabled"}},
        "3": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "t"}},
    }


def sampler_graph(steps: int = 4, seed: int = 1) -> dict[str, Any]:
    """A text-to-image graph: the sampler reports progress and sends previews."""
    return {
        "1": {"class_type": "UNETLoader", "inputs": {
            "unet_name": "qwen_image_2512_fp8_e4m3fn.safetensors", "weight_dtype": "default"}},
        "2": {"class_type": "CLIPLoader", "inputs": {
            "clip_name": "qwen_2.5_vl_7b_fp8_scaled.safetensors", "type": "qwen_image"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["2", 0]}},
        "4": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64,
                                                              "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "seed": seed, "steps": steps, "cfg": 1.0, "sampler_name": "euler",
            "scheduler": "simple", "positive": ["3", 0], "negative": ["3", 0],
            "latent_image": ["4", 0], "denoise": 1.0}},
        "6": {"class_type": "VAELoader", "inputs": {"vae_name": "qwen_image_vae.safetensors"}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["6", 0]}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "s"}},
    }


@pytest.fixture
async def client(fake_comfy: FakeComfy) -> AsyncIterator[ComfyClient]:
    comfy = ComfyClient(fake_comfy.url, stall_poll_s=0.3, down_poll_s=0.1)
    try:
        yield comfy
    finally:
        await comfy.aclose()


async def _run(client: ComfyClient, graph: dict[str, Any], **kwargs: Any) -> list[Any]:
    async with asyncio.timeout(20):   # a hang guard, not a speed check
        return [item async for item in client.execute(graph, **kwargs)]


async def test_simple_graph_finishes_with_outputs(client: ComfyClient, fake_comfy: FakeComfy) -> None:
    ref = await client.upload_image(_png())
    assert ref.type == "input" and ref.subfolder == "banana"
    items = await _run(client, simple_graph(ref.load_name))
    queued, done = items[0], items[-1]
    assert isinstance(queued, PromptQueued) and queued.position == 0
    assert isinstance(done, PromptDone) and not done.recovered
    assert done.prompt_id == queued.prompt_id
    assert all(getattr(m, "prompt_id", queued.prompt_id) == queued.prompt_id for m in items)
    assert isinstance(items[1], ExecutionStart) and isinstance(items[-2], ExecutionSuccess)
    executed = [m for m in items if isinstance(m, Executed)]
    assert [m.node for m in executed] == ["4"]
    (image,) = done.images("4")
    assert image == executed[0].images[0] and image.type == "output"
    data = await client.view(image)
    with Image.open(io.BytesIO(data)) as result:
        assert result.size == (32, 24)
    assert client.connected
    assert client.watched_prompt_ids == frozenset()
    history = fake_comfy.history(done.prompt_id)[done.prompt_id]
    assert history["prompt"][3]["client_id"] == client.client_id


async def test_same_bytes_upload_keeps_its_name(client: ComfyClient) -> None:
    first = await client.upload_image(_png())
    again = await client.upload_image(_png())
    other = await client.upload_image(_png((1, 2, 3)))
    assert first == again != other
    assert await client.view(first) == _png()


async def test_progress_and_previews_arrive_for_this_prompt(client: ComfyClient) -> None:
    items = await _run(client, sampler_graph(steps=4))
    pid = items[0].prompt_id
    progress = [m for m in items if isinstance(m, ProgressMessage)]
    assert [(m.node, m.value, m.max) for m in progress] == [("5", s, 4) for s in range(1, 5)]
    previews = [m for m in items if isinstance(m, PreviewImage)]
    assert len(previews) == 4
    assert all(p.prompt_id == pid and p.node_id == "5" for p in previews)
    with Image.open(io.BytesIO(previews[-1].image)) as first:
        assert first.format == {"image/jpeg": "JPEG", "image/png": "PNG"}[previews[-1].mime]
    assert isinstance(items[-1], PromptDone) and items[-1].images("8")


async def test_cached_rerun_still_yields_the_images(client: ComfyClient) -> None:
    ref = await client.upload_image(_png())
    first = (await _run(client, simple_graph(ref.load_name)))[-1]
    items = await _run(client, simple_graph(ref.load_name))
    cached = next(m for m in items if isinstance(m, ExecutionCached))
    assert set(cached.nodes) == {"1", "2", "3", "4"}
    done = items[-1]
    assert isinstance(done, PromptDone) and done.cached_nodes == cached.nodes
    assert done.images("4") == first.images("4")      # the old file names, as ComfyUI does


async def test_partial_targets_run_only_that_output(client: ComfyClient, fake_comfy: FakeComfy) -> None:
    ref = await client.upload_image(_png())
    graph = simple_graph(ref.load_name)
    graph["5"] = {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "o"}}
    done = (await _run(client, graph, partial_targets=["5"], extra_data={"tag": "x"}))[-1]
    assert isinstance(done, PromptDone) and set(done.outputs) == {"5"}
    entry = fake_comfy.history(done.prompt_id)[done.prompt_id]
    assert entry["prompt"][3]["tag"] == "x"


async def test_cancelling_a_running_job_interrupts_it(client: ComfyClient, fake_comfy: FakeComfy) -> None:
    fake_comfy.set_delays(node=0.5)
    seen: list[Any] = []

    async def consume() -> None:
        async for item in client.execute(sampler_graph(steps=2)):
            seen.append(item)

    task = asyncio.create_task(consume())
    async with asyncio.timeout(10):
        while not any(isinstance(m, Executing) for m in seen):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pid = seen[0].prompt_id
    assert fake_comfy.wait_idle(5)
    assert fake_comfy.counters["interrupts_applied"] == 1
    status = fake_comfy.history(pid)[pid]["status"]
    assert status["messages"][-1][0] == "execution_interrupted"
    assert client.watched_prompt_ids == frozenset()


async def test_closing_a_pending_job_deletes_it(client: ComfyClient, fake_comfy: FakeComfy) -> None:
    fake_comfy.set_delays(node=0.5)
    ref = await client.upload_image(_png())
    async with aclosing(client.execute(sampler_graph(steps=2))) as slow:
        first = await anext(slow)
        async with aclosing(client.execute(simple_graph(ref.load_name))) as waiting:
            queued = await anext(waiting)
            assert isinstance(queued, PromptQueued) and queued.position == 1
            assert fake_comfy.queue_ids()[1] == [queued.prompt_id]
        # closed while pending: deleted, never run, not in history
        assert fake_comfy.queue_ids() == ([first.prompt_id], [])
        assert fake_comfy.history(queued.prompt_id) == {}
        assert client.watched_prompt_ids == frozenset({first.prompt_id})
    assert fake_comfy.wait_idle(5)
    assert client.watched_prompt_ids == frozenset()


async def test_two_jobs_at_once_each_get_their_own_messages(client: ComfyClient) -> None:
    ref = await client.upload_image(_png())
    a, b = await asyncio.gather(_run(client, sampler_graph(steps=3, seed=5)),
                                _run(client, simple_graph(ref.load_name, width=16)))
    for items in (a, b):
        pid = items[0].prompt_id
        assert all(getattr(m, "prompt_id", pid) == pid for m in items)
        assert isinstance(items[-1], PromptDone)
    assert sum(isinstance(m, ProgressMessage) for m in a) == 3
    assert sum(isinstance(m, ProgressMessage) for m in b) == 0


class _AnswerNeverComes(httpx.AsyncHTTPTransport):
    """Delivers POST /prompt to ComfyUI, then holds the answer back (a slow or lost reply)."""

    def __init__(self) -> None:
        super().__init__()
        self.posted = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if request.method == "POST" and request.url.path == "/prompt":
            await response.aread()
            self.posted.set()
            await asyncio.sleep(3600)
        return response


async def test_cancelling_while_the_post_is_unanswered_still_cancels_the_prompt(
    fake_comfy: FakeComfy,
) -> None:
    """ComfyUI queued the prompt but its answer had not arrived when the job was stopped:
    the prompt must not run on, orphaned, on the GPU."""
    fake_comfy.set_delays(node=0.5)
    transport = _AnswerNeverComes()
    comfy = ComfyClient(fake_comfy.url, transport=transport)
    try:
        task = asyncio.create_task(anext(comfy.execute(sampler_graph(steps=2))))
        async with asyncio.timeout(10):
            await transport.posted.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert fake_comfy.wait_idle(5)
        assert fake_comfy.counters["interrupts_applied"] == 1
    finally:
        await comfy.aclose()

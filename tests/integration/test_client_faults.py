"""ComfyClient against a misbehaving fake ComfyUI: socket drops and stalls, restarts, a server
that is down or answers 500, rejected workflows, failing nodes and timeouts. Every case ends
in a result or a ComfyError with a usable message — never a hang."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import pytest
from PIL import Image

from backend.comfy import (
    ComfyClient,
    ComfyExecutionFailed,
    ComfyPromptLost,
    ComfyRejected,
    ComfyServerError,
    ComfyTimeout,
    ComfyUnreachable,
    Executed,
    Executing,
    ExecutionSuccess,
    PromptDone,
    PromptQueued,
)
from tests.fake_comfy import FakeComfy

HANG_GUARD_S = 20   # only there so a regression fails instead of hanging the suite


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (20, 120, 220)).save(buffer, "PNG")
    return buffer.getvalue()


def simple_graph(image: str) -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "bilinear",
                                                     "width": 32, "height": 24, "crop": "disabled"}},
        "3": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "f"}},
    }


def sampler_graph(steps: int, unet: str = "qwen_image_2512_fp8_e4m3fn.safetensors") -> dict[str, Any]:
    return {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": unet, "weight_dtype": "default"}},
        "2": {"class_type": "CLIPLoader", "inputs": {
            "clip_name": "qwen_2.5_vl_7b_fp8_scaled.safetensors", "type": "qwen_image"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a dog", "clip": ["2", 0]}},
        "4": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64,
                                                              "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "seed": 3, "steps": steps, "cfg": 1.0, "sampler_name": "euler",
            "scheduler": "simple", "positive": ["3", 0], "negative": ["3", 0],
            "latent_image": ["4", 0], "denoise": 1.0}},
        "6": {"class_type": "VAELoader", "inputs": {"vae_name": "qwen_image_vae.safetensors"}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["6", 0]}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "s"}},
    }


@pytest.fixture
async def client(fake_comfy: FakeComfy) -> AsyncIterator[ComfyClient]:
    comfy = ComfyClient(fake_comfy.url, stall_poll_s=0.3, down_poll_s=0.1,
                        unreachable_after_s=3.0)
    try:
        yield comfy
    finally:
        await comfy.aclose()


async def _run(client: ComfyClient, graph: dict[str, Any], **kwargs: Any) -> list[Any]:
    async with asyncio.timeout(HANG_GUARD_S):
        return [item async for item in client.execute(graph, **kwargs)]


async def test_socket_drop_mid_job_recovers_the_result_from_history(
    client: ComfyClient, fake_comfy: FakeComfy
) -> None:
    # The socket is cut as the last node starts (0.1 s of work left); the hub's first
    # reconnect waits 0.5 s, so the job ends while nobody listens and only /history can tell.
    ref = await client.upload_image(_png())
    fake_comfy.set_delays(node=0.1)
    items: list[Any] = []
    async with asyncio.timeout(HANG_GUARD_S):
        async for item in client.execute(simple_graph(ref.load_name)):
            items.append(item)
            if isinstance(item, Executing) and item.node == "4":
                assert fake_comfy.drop_websockets() == 1
    done = items[-1]
    assert isinstance(done, PromptDone) and done.recovered
    assert done.images("4") and done.images("4")[0].filename.startswith("f_")
    assert not any(isinstance(m, Executed | ExecutionSuccess) for m in items)
    assert await client._hub.wait_connected(5)     # and the socket comes back on its own
    assert client.watched_prompt_ids == frozenset()


async def test_socket_drop_while_still_running_keeps_following_it(fake_comfy: FakeComfy) -> None:
    # no stall polls here: only the reconnect may tell the client where the job is
    client = ComfyClient(fake_comfy.url, stall_poll_s=30, down_poll_s=0.1)
    ref = await client.upload_image(_png())
    fake_comfy.set_delays(node=0.3)
    items: list[Any] = []
    async with client, asyncio.timeout(HANG_GUARD_S):
        async for item in client.execute(simple_graph(ref.load_name)):
            items.append(item)
            if isinstance(item, Executing) and item.node == "1":
                fake_comfy.drop_websockets()
    done = items[-1]
    # the job outlived the gap: later nodes came over the new socket, then the result
    assert isinstance(done, PromptDone) and not done.recovered
    assert Executing(done.prompt_id, "4") in items
    assert fake_comfy.counters["ws_connections"] == 2


async def test_stalled_socket_completes_via_history(client: ComfyClient, fake_comfy: FakeComfy) -> None:
    ref = await client.upload_image(_png())
    fake_comfy.stall_websockets(True)
    items = await _run(client, simple_graph(ref.load_name))
    done = items[-1]
    assert isinstance(done, PromptDone) and done.recovered and done.images("4")
    assert len(items) == 2          # PromptQueued, then the recovered result


async def test_restart_mid_job_is_prompt_lost(client: ComfyClient, fake_comfy: FakeComfy) -> None:
    fake_comfy.set_delays(node=0.5)
    with pytest.raises(ComfyPromptLost) as caught:
        async with asyncio.timeout(HANG_GUARD_S):
            async for item in client.execute(sampler_graph(steps=2)):
                if isinstance(item, Executing):
                    fake_comfy.restart()
    assert "ComfyUI restarted" in caught.value.message and "run it again" in caught.value.message
    assert client.watched_prompt_ids == frozenset()


async def test_restart_of_a_pending_job_is_prompt_lost(client: ComfyClient, fake_comfy: FakeComfy) -> None:
    fake_comfy.set_delays(node=0.5)
    ref = await client.upload_image(_png())
    async with aclosing(client.execute(sampler_graph(steps=2))) as running:
        await anext(running)
        with pytest.raises(ComfyPromptLost):
            async with asyncio.timeout(HANG_GUARD_S):
                async for item in client.execute(simple_graph(ref.load_name)):
                    assert isinstance(item, PromptQueued) and item.position == 1
                    fake_comfy.restart()
        with pytest.raises(ComfyPromptLost):
            async with asyncio.timeout(HANG_GUARD_S):
                async for _ in running:
                    pass


async def test_server_down_is_unreachable(client: ComfyClient, fake_comfy: FakeComfy) -> None:
    fake_comfy.stop()
    with pytest.raises(ComfyUnreachable) as caught:
        await _run(client, simple_graph("x.png"))
    assert caught.value.message == (
        f"ComfyUI at {fake_comfy.url} is not reachable — is it running? (connection refused)")
    assert not client.connected
    with pytest.raises(ComfyUnreachable):
        await client.system_stats()


async def test_server_down_for_good_mid_job_gives_up(client: ComfyClient, fake_comfy: FakeComfy) -> None:
    fake_comfy.set_delays(node=0.5)
    with pytest.raises(ComfyUnreachable):
        async with asyncio.timeout(HANG_GUARD_S):
            async for item in client.execute(sampler_graph(steps=2)):
                if isinstance(item, Executing):
                    fake_comfy.stop()


async def test_500_with_empty_body_is_a_server_error(client: ComfyClient, fake_comfy: FakeComfy) -> None:
    fake_comfy.fail_http("/prompt")
    with pytest.raises(ComfyServerError) as caught:
        await _run(client, simple_graph("x.png"))
    assert caught.value.status == 500
    assert "empty body" in caught.value.message and "ComfyUI's own log" in caught.value.message
    assert client.watched_prompt_ids == frozenset()


async def test_rejected_workflow_names_node_and_input(client: ComfyClient, fake_comfy: FakeComfy) -> None:
    with pytest.raises(ComfyRejected) as caught:
        await _run(client, sampler_graph(steps=2, unet="missing.safetensors"))
    err = caught.value
    assert err.error_type == "prompt_outputs_failed_validation"
    (problem,) = err.problems
    assert (problem.node_id, problem.class_type, problem.input_name) == (
        "1", "UNETLoader", "unet_name")
    assert "Node 1 (UNETLoader) input 'unet_name': 'missing.safetensors' is not in the model " \
           "folder" in err.message
    assert fake_comfy.queue_ids() == ([], [])


async def test_missing_node_class_names_it(client: ComfyClient, fake_comfy: FakeComfy) -> None:
    fake_comfy.hide_classes("Florence2Run")
    graph = simple_graph("x.png")
    graph["9"] = {"class_type": "Florence2Run", "inputs": {}}
    with pytest.raises(ComfyRejected) as caught:
        await _run(client, graph)
    assert "Florence2Run" in caught.value.message and "ComfyUI-Florence2" in caught.value.message


async def test_partly_valid_workflow_is_rejected_and_cancelled(
    client: ComfyClient, fake_comfy: FakeComfy
) -> None:
    # One good output, one whose branch fails validation: ComfyUI answers 200 and would run
    # only the good half. The client cancels that run and reports the broken branch.
    fake_comfy.set_delays(node=0.5)
    graph = sampler_graph(steps=2)
    graph["20"] = {"class_type": "VAELoader", "inputs": {"vae_name": "nope.safetensors"}}
    graph["21"] = {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["20", 0]}}
    graph["22"] = {"class_type": "SaveImage", "inputs": {"images": ["21", 0], "filename_prefix": "b"}}
    with pytest.raises(ComfyRejected) as caught:
        await _run(client, graph)
    assert "Node 20 (VAELoader) input 'vae_name'" in caught.value.message
    assert caught.value.prompt_id
    assert fake_comfy.wait_idle(5)
    entry = fake_comfy.history(caught.value.prompt_id)
    # deleted before it started (no history) or interrupted right after it did
    assert entry == {} or entry[caught.value.prompt_id]["status"]["status_str"] == "error"


async def test_node_failure_and_oom(client: ComfyClient, fake_comfy: FakeComfy) -> None:
    ref = await client.upload_image(_png())
    fake_comfy.fail_at("3", "ValueError", "boom", times=1)
    with pytest.raises(ComfyExecutionFailed) as failed:
        await _run(client, simple_graph(ref.load_name))
    err = failed.value
    assert (err.node_id, err.node_type, err.exception_type, err.is_oom) == (
        "3", "ImageInvert", "ValueError", False)
    assert err.message == "ComfyUI failed in node 3 (ImageInvert): ValueError: boom"

    fake_comfy.oom_at("KSampler", times=1)
    with pytest.raises(ComfyExecutionFailed) as oom:
        await _run(client, sampler_graph(steps=2))
    assert oom.value.is_oom and oom.value.node_type == "KSampler"
    assert "out of GPU memory" in oom.value.message


async def test_timeout_cancels_the_job(client: ComfyClient, fake_comfy: FakeComfy) -> None:
    fake_comfy.set_delays(node=0.5)
    with pytest.raises(ComfyTimeout) as caught:
        await _run(client, sampler_graph(steps=2), timeout=0.5)
    assert "within 0.5 s" in caught.value.message
    assert fake_comfy.wait_idle(5)
    assert fake_comfy.counters["interrupts_applied"] == 1
    assert client.watched_prompt_ids == frozenset()


# --- ComfyUI dying mid-run (issue 10 item 3) and the connection epoch ---------------------


async def test_killed_mid_job_fails_within_seconds_not_a_minute(fake_comfy: FakeComfy) -> None:
    # unreachable_after_s stays at its one-minute default: the refusals after the socket
    # dropped are what end the job, dead_after_s after the first one.
    client = ComfyClient(fake_comfy.url, down_poll_s=0.5, dead_after_s=1.0)
    fake_comfy.set_delays(step=0.2)
    killed_at = 0.0
    with pytest.raises(ComfyUnreachable) as caught:
        async with client, asyncio.timeout(HANG_GUARD_S):
            async for item in client.execute(sampler_graph(steps=50)):
                if isinstance(item, Executing) and item.node == "5" and not killed_at:
                    fake_comfy.stop()
                    killed_at = time.monotonic()
    took = time.monotonic() - killed_at
    assert took < client.dead_after_s + client.down_poll_s + 1.0, took
    assert caught.value.message == (
        f"ComfyUI at {fake_comfy.url} is not reachable — is it running? (connection refused)")


async def test_a_quick_restart_mid_job_is_still_prompt_lost(fake_comfy: FakeComfy) -> None:
    # Down for less than dead_after_s: ComfyUI answers again, without the prompt.
    client = ComfyClient(fake_comfy.url, down_poll_s=0.2, dead_after_s=2.0)
    fake_comfy.set_delays(step=0.2)
    with pytest.raises(ComfyPromptLost):
        async with client, asyncio.timeout(HANG_GUARD_S):
            async for item in client.execute(sampler_graph(steps=50)):
                if isinstance(item, Executing) and item.node == "5":
                    fake_comfy.down(0.6)
    assert client.server_generation == 1


async def test_epoch_grows_on_every_reconnect_and_a_drop_is_not_a_restart(
    client: ComfyClient, fake_comfy: FakeComfy
) -> None:
    ref = await client.upload_image(_png())
    await _run(client, simple_graph(ref.load_name))
    assert (client.epoch, client.server_generation) == (1, 0)
    fake_comfy.drop_websockets()
    async with asyncio.timeout(HANG_GUARD_S):
        while client.epoch < 2:  # noqa: ASYNC110 - polling a counter
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)     # the restart check after the reconnect has run
    assert client.server_generation == 0


async def test_a_restart_while_idle_is_noticed_after_the_reconnect(
    client: ComfyClient, fake_comfy: FakeComfy
) -> None:
    ref = await client.upload_image(_png())
    await _run(client, simple_graph(ref.load_name))
    fake_comfy.restart()
    async with asyncio.timeout(HANG_GUARD_S):
        while client.server_generation == 0:  # noqa: ASYNC110 - polling a counter
            await asyncio.sleep(0.02)
    assert client.epoch == 2 and client.server_generation == 1


async def test_two_jobs_lost_in_one_restart_count_one_restart(
    client: ComfyClient, fake_comfy: FakeComfy
) -> None:
    fake_comfy.set_delays(node=0.5)
    ref = await client.upload_image(_png())

    async def lose(graph: dict[str, Any]) -> None:
        with pytest.raises(ComfyPromptLost):
            await _run(client, graph)

    first = asyncio.create_task(lose(sampler_graph(steps=2)))
    second = asyncio.create_task(lose(simple_graph(ref.load_name)))
    async with asyncio.timeout(HANG_GUARD_S):
        while len(client.watched_prompt_ids) < 2 or sum(map(len, fake_comfy.queue_ids())) < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    fake_comfy.restart()
    await asyncio.gather(first, second)
    await asyncio.sleep(0.3)
    assert client.server_generation == 1

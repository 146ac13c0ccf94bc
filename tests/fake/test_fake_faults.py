"""Faults (OOM, node errors, HTTP 500, dropped / stalled sockets, down and restart), the
simulated VRAM, and the /__fake__/ control routes of a fake running as a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.fake.helpers import CAPTURE_GRAPH, Socket, messages, png_bytes, submit, upload
from tests.fake_comfy import FakeComfy

UNET = "qwen_image_2512_fp8_e4m3fn.safetensors"
EDIT_UNET = "qwen_image_edit_2511_fp8mixed.safetensors"
GIB = 1024**3


def generate(unet: str = UNET, seed: int = 1, steps: int = 2) -> dict[str, Any]:
    return {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": unet, "weight_dtype": "default"}},
        "2": {"class_type": "CLIPLoader", "inputs": {
            "clip_name": "qwen_2.5_vl_7b_fp8_scaled.safetensors", "type": "qwen_image"}},
        "3": {"class_type": "VAELoader", "inputs": {"vae_name": "qwen_image_vae.safetensors"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "a banana", "clip": ["2", 0]}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["2", 0]}},
        "6": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64,
                                                              "batch_size": 1}},
        "7": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "seed": seed, "steps": steps, "cfg": 1.0, "sampler_name": "euler",
            "scheduler": "simple", "positive": ["4", 0], "negative": ["5", 0],
            "latent_image": ["6", 0], "denoise": 1.0}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["3", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "g"}},
    }


def _status(fake: FakeComfy, prompt_id: str) -> dict[str, Any]:
    assert fake.wait_idle()
    return fake.history(prompt_id)[prompt_id]["status"]


# --- execution faults ----------------------------------------------------------------------


async def test_oom_at_a_node_class_then_recovers(fake_comfy: FakeComfy,
                                                 client: httpx.AsyncClient) -> None:
    fake_comfy.oom_at("KSampler", times=1)
    async with Socket(fake_comfy.url, "o") as sock:
        answer = await submit(client, generate(), "o")
        frames = await sock.until_done(answer["prompt_id"])
    error = next(m["data"] for m in messages(frames) if m["type"] == "execution_error")
    assert error["node_type"] == "KSampler" and error["exception_type"] == "torch.OutOfMemoryError"
    assert error["exception_message"].startswith(
        "Allocation on device 0 would exceed allowed memory. (out of memory)\nCurrently allocated")
    assert error["exception_message"].endswith("accidentally set the batch_size to a large number.")
    assert sorted(error["executed"]) == ["1", "2", "3", "4", "5", "6"]
    assert fake_comfy.resident_models == []            # ComfyUI unloads everything on OOM
    assert [m["type"] for m in messages(frames)][-3:] == ["execution_error", "status", "executing"]

    again = await submit(client, generate(), "o")
    assert _status(fake_comfy, again["prompt_id"])["status_str"] == "success"


async def test_oom_while_loading_a_named_model_and_too_small_a_card(
        fake_comfy: FakeComfy, client: httpx.AsyncClient) -> None:
    fake_comfy.oom_at(UNET)
    answer = await submit(client, generate())
    status = _status(fake_comfy, answer["prompt_id"])
    assert status["messages"][-1][1]["node_type"] == "UNETLoader"
    fake_comfy.clear_faults()

    fake_comfy.set_vram_total(8)
    answer = await submit(client, generate(seed=2))
    error = _status(fake_comfy, answer["prompt_id"])["messages"][-1]
    assert error[0] == "execution_error" and error[1]["exception_type"] == "torch.OutOfMemoryError"


async def test_other_error_at_a_node_id(fake_comfy: FakeComfy, client: httpx.AsyncClient) -> None:
    await upload(client, "cap_src.png", png_bytes())
    fake_comfy.fail_at("3", "ValueError", "bad things")
    answer = await submit(client, CAPTURE_GRAPH, "e")
    status = _status(fake_comfy, answer["prompt_id"])
    kind, data = status["messages"][-1]
    assert kind == "execution_error"
    assert (data["node_id"], data["node_type"], data["exception_type"]) == (
        "3", "ImageInvert", "ValueError")
    assert data["exception_message"] == "bad things\n"
    assert data["executed"] == ["1", "2"] and list(data["current_inputs"]) == ["image"]
    assert status["status_str"] == "error" and status["completed"] is False


# --- HTTP and sockets ----------------------------------------------------------------------


async def test_http_500_on_chosen_routes(fake_comfy: FakeComfy, client: httpx.AsyncClient) -> None:
    fake_comfy.fail_http("/prompt", "GET /queue", times=3)
    for path in ("/queue", "/api/queue", "/prompt"):
        response = await client.get(path)
        assert (response.status_code, response.content) == (500, b"")
    assert (await client.get("/queue")).status_code == 200           # times used up
    assert (await client.get("/system_stats")).status_code == 200

    fake_comfy.fail_http()
    assert (await client.get("/system_stats")).status_code == 500
    assert (await client.get("/__fake__/state")).status_code == 200   # control stays up
    fake_comfy.clear_faults()
    assert (await client.get("/system_stats")).status_code == 200
    assert fake_comfy.counters["requests"]["GET /queue"] == 3


async def test_dropped_sockets_and_the_prompt_still_finishes(
        fake_comfy: FakeComfy, client: httpx.AsyncClient, uploaded: str) -> None:
    fake_comfy.set_delays(node=0.2)
    async with Socket(fake_comfy.url, "d") as sock:
        answer = await submit(client, CAPTURE_GRAPH, "d")
        await sock.recv()
        assert fake_comfy.drop_websockets() == 1
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await sock.recv()
        assert closed.value.rcvd is None                # no close frame: a real drop
    assert _status(fake_comfy, answer["prompt_id"])["status_str"] == "success"
    async with Socket(fake_comfy.url, "d") as again:
        assert messages(again.frames)[0]["data"]["sid"] == "d"
    assert fake_comfy.counters["ws_drops"] == 1


async def test_stalled_socket_stays_open_but_silent(fake_comfy: FakeComfy,
                                                    client: httpx.AsyncClient,
                                                    uploaded: str) -> None:
    async with Socket(fake_comfy.url, "s") as sock:
        fake_comfy.stall_websockets()
        answer = await submit(client, CAPTURE_GRAPH, "s")
        assert _status(fake_comfy, answer["prompt_id"])["status_str"] == "success"
        assert sock.ws is not None
        pong = await sock.ws.ping()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(pong), 0.3)
        with pytest.raises(TimeoutError):
            await sock.recv(within=0.2)
        fake_comfy.stall_websockets(False)
        second = await submit(client, CAPTURE_GRAPH, "s")
        frames = await sock.until_done(second["prompt_id"])
        assert messages(frames)[0]["type"] == "status"


async def test_stop_and_restart_on_the_same_port(fake_comfy: FakeComfy,
                                                 client: httpx.AsyncClient, uploaded: str) -> None:
    answer = await submit(client, CAPTURE_GRAPH)
    assert fake_comfy.wait_idle() and fake_comfy.history(answer["prompt_id"])
    url = fake_comfy.url
    fake_comfy.stop()
    with pytest.raises(httpx.ConnectError):
        await client.get("/queue")
    fake_comfy.start()
    assert fake_comfy.url == url
    fake_comfy.set_delays(node=30)
    running = await submit(client, CAPTURE_GRAPH)
    waiting = await submit(client, CAPTURE_GRAPH)
    fake_comfy.restart()
    assert fake_comfy.url == url
    async with httpx.AsyncClient(base_url=url) as fresh:
        assert (await fresh.get("/queue")).json() == {"queue_running": [], "queue_pending": []}
        assert (await fresh.get("/history")).json() == {}
        for lost in (answer, running, waiting):
            assert (await fresh.get(f"/history/{lost['prompt_id']}")).json() == {}
        info = (await fresh.get("/object_info/LoadImage")).json()
        assert info["LoadImage"]["input"]["required"]["image"][0] == ["cap_src.png"]   # files stay


async def test_down_for_a_while_comes_back(fake_comfy: FakeComfy, client: httpx.AsyncClient) -> None:
    fake_comfy.down(0.3)
    with pytest.raises(httpx.ConnectError):
        await client.get("/queue")
    async with asyncio.timeout(10):
        while True:
            try:
                if (await client.get("/queue")).status_code == 200:
                    break
            except httpx.ConnectError:
                await asyncio.sleep(0.05)


# --- memory --------------------------------------------------------------------------------


async def test_vram_falls_as_models_load_and_swaps_are_counted(
        fake_comfy: FakeComfy, client: httpx.AsyncClient) -> None:
    async def device() -> dict[str, Any]:
        return (await client.get("/system_stats")).json()["devices"][0]

    empty = await device()
    assert empty["name"] == "cuda:0 NVIDIA RTX 6000 Ada Generation : cudaMallocAsync"
    assert empty["vram_total"] - empty["vram_free"] < 1 * GIB

    async with Socket(fake_comfy.url, "m") as sock:
        answer = await submit(client, generate(steps=3), "m")
        frames = await sock.until_done(answer["prompt_id"])
    progress = [m["data"] for m in messages(frames) if m["type"] == "progress"]
    assert [(p["node"], p["value"], p["max"]) for p in progress][-1] == ("7", 3, 3)
    assert any(isinstance(f, bytes) and f[:8] == bytes.fromhex("0000000100000001")
               for f in frames), "sampler previews are JPEG type-1 frames"
    loaded = await device()
    assert loaded["vram_free"] < empty["vram_free"] - 20 * GIB
    assert sorted(fake_comfy.resident_models) == sorted(
        [UNET, "qwen_2.5_vl_7b_fp8_scaled.safetensors", "qwen_image_vae.safetensors"])
    assert (fake_comfy.counters["model_loads"], fake_comfy.counters["model_swaps"]) == (3, 0)

    await submit(client, generate(seed=2))
    assert fake_comfy.wait_idle()
    assert fake_comfy.counters["model_loads"] == 3            # all resident already

    await submit(client, generate(unet=EDIT_UNET))
    assert fake_comfy.wait_idle()
    counters = fake_comfy.counters
    assert (counters["model_loads"], counters["model_swaps"]) == (4, 1)
    assert UNET not in fake_comfy.resident_models and EDIT_UNET in fake_comfy.resident_models

    freed = await client.post("/free", json={"unload_models": True, "free_memory": True})
    assert (freed.status_code, freed.content) == (200, b"")
    assert fake_comfy.wait_idle() and fake_comfy.resident_models == []
    assert (await device())["vram_free"] == empty["vram_free"]
    async with Socket(fake_comfy.url, "m") as sock:
        again = await submit(client, generate(unet=EDIT_UNET), "m")
        frames = await sock.until_done(again["prompt_id"])
    cached = next(m for m in messages(frames) if m["type"] == "execution_cached")
    assert cached["data"]["nodes"] == []                       # cache dropped by free_memory


async def test_unload_models_alone_keeps_the_cache(fake_comfy: FakeComfy,
                                                   client: httpx.AsyncClient,
                                                   uploaded: str) -> None:
    await submit(client, CAPTURE_GRAPH)
    assert fake_comfy.wait_idle()
    await client.post("/free", json={"unload_models": True})
    answer = await submit(client, CAPTURE_GRAPH)
    messages_ = _status(fake_comfy, answer["prompt_id"])["messages"]
    assert messages_[1][1]["nodes"] == ["1", "2", "3", "4"]
    assert fake_comfy.counters["frees"] == 1


# --- /__fake__ and the subprocess ------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_subprocess_driven_over_http(tmp_path: Path) -> None:
    port = _free_port()
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_comfy", "--host", "127.0.0.1", "--port", str(port),
         "--root", str(tmp_path), "--log-level", "WARNING"], cwd=root, env=env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            _until(lambda: _get_ok(http, "/system_stats"), 20)
            _drive_control_routes(http)
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def _until(condition: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _get_ok(http: httpx.Client, path: str) -> bool:
    try:
        return http.get(path).status_code == 200
    except httpx.TransportError:
        return False


def _drive_control_routes(http: httpx.Client) -> None:
    state = http.get("/__fake__/state").json()
    assert state["running"] and state["memory"]["vram_total"] == 48 * GIB

    http.post("/__fake__/models", json={"diffusion_models": []})
    assert http.get("/models/diffusion_models").json() == []
    http.post("/__fake__/hidden_classes", json={"classes": ["ImageInvert"]})
    assert http.get("/object_info/ImageInvert").json() == {}
    http.post("/__fake__/hidden_classes", json={"classes": []})
    http.post("/__fake__/delays", json={"node_delay": 0})

    http.post("/upload/image", files={"image": ("cap_src.png", png_bytes(), "image/png")})
    faults = http.post("/__fake__/faults", json={"error_at": "ImageInvert", "error_type": "KeyError",
                                                 "error_times": 1, "http_500": ["/queue"]})
    assert faults.json()["http_500"] == ["/queue"]
    assert http.get("/queue").status_code == 500
    prompt_id = http.post("/prompt", json={"prompt": CAPTURE_GRAPH}).json()["prompt_id"]
    _until(lambda: http.get(f"/history/{prompt_id}").json() != {}, 10)
    entry = http.get(f"/history/{prompt_id}").json()[prompt_id]
    assert entry["status"]["messages"][-1][1]["exception_type"] == "KeyError"
    http.post("/__fake__/faults/clear")
    assert http.get("/queue").status_code == 200

    counters = http.get("/__fake__/counters").json()
    assert counters["requests"]["GET /queue"] == 2 and counters["prompts_executed"] == 1
    assert http.post("/__fake__/drop_websockets").json() == {"dropped": 0}
    http.post("/__fake__/counters/reset")
    assert http.get("/__fake__/counters").json()["prompts_executed"] == 0

    http.post("/__fake__/restart")
    _until(lambda: _get_ok(http, "/history") and http.get("/history").json() == {}, 10)
    assert json.loads(http.get("/__fake__/state").text)["running"] is True

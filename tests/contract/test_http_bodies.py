"""The recorded ComfyUI HTTP answers replayed through the client (httpx.MockTransport): the
right values come out, and every failure becomes an error a person can act on."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.comfy import (
    ComfyClient,
    ComfyExecutionFailed,
    ComfyInterrupted,
    ComfyPromptLost,
    ComfyRejected,
    ComfyServerError,
    ComfyUnreachable,
    Device,
    ImageRef,
    PromptDone,
    PromptQueued,
)
from backend.comfy.client import _result_from_history
from backend.comfy.websocket import ws_url_for

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "comfy"
GRAPH = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "cap_src.png"}},
    "4": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
}
# Nothing listens on port 9 on loopback: the websocket fails fast, REST goes to the mock.
DEAD_URL = "http://127.0.0.1:9"


def _load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def _replay(recorded: dict[str, Any]) -> httpx.Response:
    """A recorded exchange as an httpx response (JSON body, or the raw text / empty)."""
    if "body" in recorded:
        return httpx.Response(recorded["status"], json=recorded["body"])
    text = recorded.get("body_text", "")
    return httpx.Response(recorded["status"], content=text.encode())


Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """Routes "METHOD /path" to recorded answers and remembers every request."""

    def __init__(self, routes: dict[str, Any]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = f"{request.method} {request.url.path}"
        answer = self.routes.get(key)
        if answer is None:
            return httpx.Response(404)
        if callable(answer):
            return answer(request)
        return _replay(answer)

    def calls(self, key: str) -> list[httpx.Request]:
        return [r for r in self.requests if f"{r.method} {r.url.path}" == key]


def _client(routes: dict[str, Any], **kwargs: Any) -> tuple[ComfyClient, Recorder]:
    recorder = Recorder(routes)
    client = ComfyClient(DEAD_URL, transport=httpx.MockTransport(recorder), **kwargs)
    return client, recorder


EMPTY_200 = {"status": 200, "body_text": ""}


async def test_submit_posts_client_prompt_id_and_client_id() -> None:
    recorded = _load("trace_prompt_success.json")["fresh"]
    client, rec = _client({"POST /prompt": recorded})
    async with client:
        sub = await client.submit(GRAPH, prompt_id="my-id", extra_data={"extra_pnginfo": {"a": 1}},
                                  partial_targets=["4"])
    assert (sub.prompt_id, sub.number) == ("480da2cb-8d37-4e73-a00d-02a96af8fa38", 0)
    sent = json.loads(rec.requests[0].content)
    assert sent["prompt"] == GRAPH and sent["prompt_id"] == "my-id"
    assert sent["client_id"] == client.client_id
    assert sent["extra_data"] == {"extra_pnginfo": {"a": 1}, "client_id": client.client_id}
    assert sent["partial_execution_targets"] == ["4"] and "front" not in sent


def test_ws_url() -> None:
    assert ws_url_for("http://h:8188", "abc") == "ws://h:8188/ws?clientId=abc"
    assert ws_url_for("https://h/comfy/", "a b") == "wss://h/comfy/ws?clientId=a%20b"


INVALID = [e for e in _load("trace_prompt_invalid.json")["entries"] if e["status"] == 400]


@pytest.mark.parametrize("entry", INVALID, ids=lambda e: e["case"])
async def test_every_recorded_400_becomes_comfy_rejected(entry: dict[str, Any]) -> None:
    client, _ = _client({"POST /prompt": entry})
    async with client:
        with pytest.raises(ComfyRejected) as caught:
            await client.submit(GRAPH)
    err = caught.value
    assert err.error_type == entry["body"]["error"]["type"]
    assert err.message.startswith("ComfyUI")
    assert len(err.problems) == sum(len(n["errors"]) for n in entry["body"]["node_errors"].values())
    for problem in err.problems:
        assert problem.node_id in entry["body"]["node_errors"]
        assert problem.class_type and problem.describe() in (err.message + err.detail)
    assert err.error_type in err.detail


def _invalid(case: str) -> dict[str, Any]:
    return next(e for e in INVALID if e["case"] == case)


@pytest.mark.parametrize(("case", "expected"), [
    ("UNETLoader bad enum unet_name",
     "Node 3 (VAELoader) input 'vae_name': 'no_such_vae.safetensors' is not in the model folder"),
    ("missing required input (ImageScale.width)",
     "Node 2 (ImageScale) input 'width': is required but missing"),
    ("bad enum upscale_method",
     "Node 2 (ImageScale) input 'upscale_method': 'bogus' is not one of the allowed values "
     "('nearest-exact', 'bilinear'"),
    ("INT above max", "Node 2 (ImageScale) input 'width': Value 999999 bigger than max of 16384"),
    ("LoadImage with non-existent file",
     "Node 1 (LoadImage) input 'image': Invalid image file: does_not_exist.png"),
    ("unknown class_type",
     "ComfyUI has no node class 'NoSuchNode' (node 3) — install the custom node pack"),
    ("no output node", "it has no output node"),
])
async def test_rejection_messages_say_which_node_input_and_why(case: str, expected: str) -> None:
    client, _ = _client({"POST /prompt": _invalid(case)})
    async with client:
        with pytest.raises(ComfyRejected) as caught:
            await client.submit(GRAPH)
    assert expected in caught.value.message


def test_missing_node_type_names_the_pack() -> None:
    err = ComfyRejected.from_body({
        "error": {"type": "missing_node_type", "message": "Node 'Florence2Run' not found",
                  "details": "Node ID '#12'",
                  "extra_info": {"node_id": "12", "class_type": "Florence2Run"}},
        "node_errors": {},
    })
    assert err.missing_class == "Florence2Run"
    assert "'Florence2Run' (node 12)" in err.message and "ComfyUI-Florence2" in err.message


async def test_200_with_node_errors_cancels_the_partial_run_and_rejects() -> None:
    recorded = _load("trace_runtime_error.json")["unet_fake_post"]
    client, rec = _client({"POST /prompt": recorded, "POST /queue": EMPTY_200,
                           "POST /interrupt": EMPTY_200})
    async with client:
        with pytest.raises(ComfyRejected) as caught:
            await client.submit(GRAPH)
    pid = "0f241136-8cfc-4eaf-b8e7-e8505b9515ae"
    assert caught.value.prompt_id == pid
    assert "Node 10 (CLIPLoader) input 'clip_name': 'fake.safetensors' is not in the model" in (
        caught.value.message)
    assert json.loads(rec.calls("POST /queue")[0].content) == {"delete": [pid]}
    assert json.loads(rec.calls("POST /interrupt")[0].content) == {"prompt_id": pid}


async def test_non_json_prompt_body_500_is_a_server_error() -> None:
    entry = next(e for e in _load("trace_prompt_invalid.json")["entries"] if e["status"] == 500)
    client, _ = _client({"POST /prompt": entry})
    async with client:
        with pytest.raises(ComfyServerError) as caught:
            await client.submit(GRAPH)
    assert caught.value.status == 500 and "ComfyUI's log" in caught.value.message
    assert "Server got itself in trouble" in caught.value.detail


async def test_500_with_empty_body_says_so() -> None:
    client, _ = _client({"POST /prompt": {"status": 500, "body_text": ""}})
    async with client:
        with pytest.raises(ComfyServerError) as caught:
            await client.submit(GRAPH)
    msg = caught.value.message
    assert "HTTP 500 and an empty body" in msg and "traceback is in ComfyUI's own log" in msg
    assert "Expecting value: line 1 column 1" in msg


async def test_200_with_empty_body_where_json_is_due_is_a_server_error() -> None:
    client, _ = _client({"GET /queue": EMPTY_200})
    async with client:
        with pytest.raises(ComfyServerError, match="not the JSON"):
            await client.queue()


async def test_connection_refused_is_unreachable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    client = ComfyClient(DEAD_URL, transport=httpx.MockTransport(refuse))
    async with client:
        with pytest.raises(ComfyUnreachable) as caught:
            await client.system_stats()
    assert caught.value.message == (
        f"ComfyUI at {DEAD_URL} is not reachable — is it running? (connection refused)")


async def test_queue_busy_sorts_pending_by_number() -> None:
    recorded = _load("trace_queue_interrupt.json")["busy_one_running_two_pending"]
    client, _ = _client({"GET /queue": recorded})
    async with client:
        snap = await client.queue()
    running = "46a05b43-e408-4c1c-98e9-c8583fe748fe"
    front = "2fbcc8d3-8088-4ce0-90b9-e403e4b2664a"
    assert [i.prompt_id for i in snap.running] == [running]
    assert [i.number for i in snap.pending] == [-24, 23]   # front=True runs first
    assert snap.pending[0].prompt_id == front
    assert snap.running[0].client_id == "975254af-8cb2-478b-bf03-2ddc427e6e99"
    assert snap.running[0].outputs_to_execute == ("99",)
    assert snap.position(running) == 0 and snap.position(front) == 1
    assert snap.position("43af8525-e90b-435e-a840-ded6292d0d4d") == 2
    assert snap.position("nope") is None


async def test_queue_idle_and_empty_body_routes() -> None:
    q = _load("trace_queue_interrupt.json")
    misc = _load("trace_misc.json")
    client, rec = _client({"GET /queue": q["idle"], "POST /queue": q["delete_pending"],
                           "POST /interrupt": q["interrupt"], "POST /free": misc["POST /free"]})
    async with client:
        snap = await client.queue()
        assert snap.running == [] and snap.pending == []
        await client.delete_pending(["a", "b"])
        await client.interrupt()
        await client.interrupt("p1")
        await client.free()
    assert json.loads(rec.calls("POST /queue")[0].content) == {"delete": ["a", "b"]}
    assert [json.loads(r.content) for r in rec.calls("POST /interrupt")] == [{}, {"prompt_id": "p1"}]
    assert json.loads(rec.calls("POST /free")[0].content) == {
        "unload_models": True, "free_memory": True}


async def test_history_entries() -> None:
    h = _load("trace_history.json")
    pid = "480da2cb-8d37-4e73-a00d-02a96af8fa38"
    client, _ = _client({f"GET /history/{pid}": h["success"],
                         "GET /history/00000000-0000-0000-0000-000000000000": h["unknown_id"]})
    async with client:
        entry = await client.history(pid)
        assert await client.history("00000000-0000-0000-0000-000000000000") is None
    assert entry is not None
    done = _result_from_history(pid, entry)
    assert done == PromptDone(
        pid, {"4": {"images": [{"filename": "capture_00001_.png", "subfolder": "", "type": "output"}]}},
        (), recovered=True)
    assert done.images() == [ImageRef("capture_00001_.png", "", "output")]


def _entry(recorded: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ((pid, entry),) = recorded["body"].items()
    return pid, entry


def test_history_of_a_cached_rerun_keeps_old_names_and_cached_nodes() -> None:
    pid, entry = _entry(_load("trace_history.json")["cached_rerun"])
    done = _result_from_history(pid, entry)
    assert done is not None and done.cached_nodes == ("1", "2", "3", "4")
    assert done.images("4")[0].filename == "capture_00001_.png"


def test_history_of_a_failed_run_raises_execution_failed() -> None:
    pid, entry = _entry(_load("trace_runtime_error.json")["history_vae_garbage"])
    with pytest.raises(ComfyExecutionFailed) as caught:
        _result_from_history(pid, entry)
    err = caught.value
    assert (err.node_id, err.node_type, err.is_oom) == ("1", "VAELoader", False)
    assert err.exception_type == "safetensors._safetensors_rust.SafetensorError"
    assert err.message == ("ComfyUI failed in node 1 (VAELoader): SafetensorError: "
                           "Error while deserializing header: header too large")


def test_history_of_an_interrupted_run_raises_interrupted() -> None:
    pid, entry = _entry(_load("trace_queue_interrupt.json")["history_interrupted"])
    with pytest.raises(ComfyInterrupted) as caught:
        _result_from_history(pid, entry)
    assert caught.value.node_id == "11" and "interrupted at node 11 (ImageScale)" in caught.value.message


@pytest.mark.parametrize(("exc_type", "message", "oom"), [
    ("torch.OutOfMemoryError", "CUDA out of memory. Tried to allocate 2.00 GiB", True),
    ("RuntimeError", "Allocation on device 0 would exceed allowed memory.", True),
    ("torch.cuda.OutOfMemoryError", "", True),
    ("ValueError", "bad shape", False),
])
def test_oom_is_recognised(exc_type: str, message: str, oom: bool) -> None:
    err = ComfyExecutionFailed.from_data({"node_id": "7", "node_type": "KSampler",
                                          "exception_type": exc_type, "exception_message": message})
    assert err.is_oom is oom
    assert ("out of GPU memory" in err.message) is oom and "node 7 (KSampler)" in err.message


async def test_system_stats_models_upload_view() -> None:
    misc = _load("trace_misc.json")
    upload = _load("trace_upload.json")["entries"][0]
    png = b"\x89PNG\r\n\x1a\nfake"

    def view(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=png, headers={"Content-Type": "image/png"})

    client, rec = _client({
        "GET /system_stats": misc["GET /system_stats"],
        "GET /models/diffusion_models": misc["GET /models/diffusion_models"],
        "GET /models/nonexistent_folder": misc["GET /models/nonexistent_folder"],
        "POST /upload/image": upload,
        "GET /view": view,
    })
    async with client:
        stats = await client.system_stats()
        assert await client.models("diffusion_models") == ["fake.safetensors", "garbage.safetensors"]
        assert await client.models("nonexistent_folder") == []
        ref = await client.upload_image(png, subfolder="banana")
        await client.upload_image(png, subfolder="banana")
        await client.upload_image(png + b"!", subfolder="banana")
        assert await client.view(ImageRef("x.png", "", "output")) == png
    assert stats.comfyui_version == "0.3.64"
    assert (stats.ram_total, stats.ram_free) == (25276502016, 23437783040)
    assert stats.devices == [
        Device("cpu", "cpu", 25276502016, 23437783040, 25276502016, 23437783040)
    ]
    assert ref == ImageRef("cap_src.png", "", "input")   # what the server answered, verbatim
    uploads = rec.calls("POST /upload/image")
    names = [_multipart_filename(r) for r in uploads]
    assert names[0] == names[1] != names[2] and names[0].endswith(".png")
    body = uploads[0].content
    assert b'name="overwrite"' in body and b'name="subfolder"' in body and b"banana" in body
    assert dict(rec.calls("GET /view")[0].url.params) == {
        "filename": "x.png", "subfolder": "", "type": "output"}


def _multipart_filename(request: httpx.Request) -> str:
    marker = b'name="image"; filename="'
    start = request.content.index(marker) + len(marker)
    return request.content[start:request.content.index(b'"', start)].decode()


# ---- execute() recovery with no websocket at all: only /history + /queue can tell ------------


async def test_execute_without_socket_recovers_from_history() -> None:
    history = _load("trace_history.json")["success"]
    pid = "480da2cb-8d37-4e73-a00d-02a96af8fa38"
    polls = {"n": 0}

    def hist(request: httpx.Request) -> httpx.Response:
        polls["n"] += 1
        return _replay(history) if polls["n"] >= 2 else httpx.Response(200, json={})

    queue = {"status": 200, "body": {"queue_running": [[0, pid, {}, {}, ["4"]]],
                                     "queue_pending": []}}
    client, _ = _client({"POST /prompt": _load("trace_prompt_success.json")["fresh"],
                         "GET /queue": queue, f"GET /history/{pid}": hist},
                        down_poll_s=0.01, socket_wait_s=1.0)
    async with client:
        items = [item async for item in client.execute(GRAPH, prompt_id=pid)]
        assert client.watched_prompt_ids == frozenset()
    assert items[0] == PromptQueued(pid, 0, 0)
    assert isinstance(items[-1], PromptDone) and items[-1].recovered
    assert items[-1].images("4")[0].filename == "capture_00001_.png"


async def test_execute_prompt_in_neither_queue_nor_history_is_lost() -> None:
    pid = "480da2cb-8d37-4e73-a00d-02a96af8fa38"
    idle = _load("trace_queue_interrupt.json")["idle"]
    client, _ = _client({"POST /prompt": _load("trace_prompt_success.json")["fresh"],
                         "GET /queue": idle,
                         f"GET /history/{pid}": _load("trace_history.json")["unknown_id"]},
                        down_poll_s=0.01, socket_wait_s=1.0)
    async with client:
        with pytest.raises(ComfyPromptLost) as caught:
            async for _ in client.execute(GRAPH, prompt_id=pid):
                pass
    assert "ComfyUI restarted" in caught.value.message and "run it again" in caught.value.message

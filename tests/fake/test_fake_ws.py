"""The fake's websocket messages, frame by frame, against the recorded real sessions."""

from __future__ import annotations

import json
import struct
import uuid
from typing import Any

import httpx

from tests.fake.helpers import (
    CAPTURE_GRAPH,
    Socket,
    messages,
    recorded,
    submit,
    summarize,
    trace,
    ws_sections,
)
from tests.fake_comfy import FakeComfy

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _request(section: list[dict[str, Any]]) -> dict[str, Any]:
    return section[0]["post_prompt_request"]


async def test_greeting_and_feature_flags_reply(fake_comfy: FakeComfy) -> None:
    connect = trace("trace_ws_connect.json")
    async with Socket(fake_comfy.url, "plain") as plain:
        (greeting,) = messages(plain.frames)
    expected = connect["plain_connect"][0]["msg"]
    assert greeting == {**expected, "data": {**expected["data"], "sid": "plain"}}

    async with Socket(fake_comfy.url, "flags", preview_metadata=True) as flagged:
        status, flags = messages(flagged.frames)
    recorded_reply = connect["with_client_feature_flags_first_message"]["received"][1]["msg"]
    assert status["data"]["sid"] == "flags"
    assert flags == recorded_reply


async def test_connect_without_client_id_gets_an_id(fake_comfy: FakeComfy) -> None:
    from websockets.asyncio.client import connect

    async with connect(fake_comfy.url.replace("http", "ws") + "/api/ws") as ws:
        greeting = json.loads(await ws.recv())
    sid = greeting["data"]["sid"]
    assert len(sid) == 32 and "-" not in sid and int(sid, 16) >= 0


async def test_four_recorded_runs_in_one_session(fake_comfy: FakeComfy, client: httpx.AsyncClient,
                                                 uploaded: str) -> None:
    """Fresh, fully cached, partially cached, SaveImageWebsocket + PreviewImage: same frames
    in the same order as the real server sent them."""
    sections = ws_sections()
    client_id = str(uuid.uuid4())
    async with Socket(fake_comfy.url, client_id) as socket:
        greeting = summarize(socket.frames[0])
        assert [greeting] == recorded(sections["run1"])[:1]
        for name, number in (("run1", 0), ("run2", 1), ("run3", 2), ("run4", 3)):
            section = sections[name]
            prompt = _request(section)["prompt"]
            if name == "run4":
                # The real server keeps outputs in a set; this run executed 4 before 3.
                prompt = {k: prompt[k] for k in ("1", "2", "4", "3")}
            answer = await submit(client, prompt, client_id)
            assert answer["number"] == number and answer["node_errors"] == {}
            frames = await socket.until_done(answer["prompt_id"])
            expected = recorded(section)
            if name == "run1":
                expected = expected[1:]
            assert [summarize(f) for f in frames] == expected, name

            sent = messages(frames)
            assert all(m["data"]["prompt_id"] == answer["prompt_id"]
                       for m in sent if m["type"] not in ("status",))
            recorded_executed = [f["msg"]["data"]["output"] for f in section
                                 if f.get("msg", {}).get("type") == "executed"]
            executed = [m["data"]["output"] for m in sent if m["type"] == "executed"]
            if name != "run4":
                assert executed == recorded_executed, "same file names, cached ones re-sent"
            else:
                (images,) = executed
                assert images["images"][0]["type"] == "temp"
                assert images["images"][0]["filename"].startswith("ComfyUI_temp_")
                (binary,) = [f for f in frames if isinstance(f, bytes)]
                assert binary[:8] == bytes.fromhex("0000000100000002")
                assert binary[8:16] == PNG_MAGIC

    outputs = sorted(p.name for p in fake_comfy.output_dir.iterdir())
    assert outputs == ["capture_00001_.png", "capture_00002_.png"]   # none for the cached run


async def test_preview_with_metadata_for_clients_that_ask(fake_comfy: FakeComfy,
                                                          client: httpx.AsyncClient,
                                                          uploaded: str) -> None:
    recorded_run = trace("trace_runtime_error_unet_and_preview_metadata.json")
    section = recorded_run["savews_with_metadata_flag_ws"]
    request = recorded_run["savews_with_metadata_flag_post"]["request"]["json"]
    client_id = request["client_id"]
    async with Socket(fake_comfy.url, client_id, preview_metadata=True) as socket:
        answer = await submit(client, request["prompt"], client_id)
        frames = await socket.until_done(answer["prompt_id"])
    assert [summarize(f) for f in frames] == [summarize(f) for f in section]

    (binary,) = [f for f in frames if isinstance(f, bytes)]
    recorded_binary = next(f for f in section if f["frame"] == "binary")
    assert struct.unpack(">I", binary[:4])[0] == 4
    length = struct.unpack(">I", binary[4:8])[0]
    assert length == recorded_binary["metadata_len"]
    metadata = json.loads(binary[8:8 + length])
    assert metadata == {**recorded_binary["metadata"], "prompt_id": answer["prompt_id"]}
    assert binary[8 + length:16 + length] == PNG_MAGIC

    history = (await client.get(f"/history/{answer['prompt_id']}")).json()[answer["prompt_id"]]
    expected = next(iter(recorded_run["savews_history"]["body"].values()))
    assert history["outputs"] == expected["outputs"] == {}
    assert history["meta"] == {}
    assert history["prompt"][3] == {"client_id": client_id}
    assert [m[0] for m in history["status"]["messages"]] == [
        m[0] for m in expected["status"]["messages"]]


async def test_runtime_error_order_and_history(fake_comfy: FakeComfy, client: httpx.AsyncClient
                                               ) -> None:
    recorded_run = trace("trace_runtime_error.json")
    request = recorded_run["vae_garbage_post"]["request"]["json"]
    fake_comfy.set_models("vae", ["fake.safetensors", "garbage.safetensors"])
    fake_comfy.fail_at("VAELoader", "safetensors._safetensors_rust.SafetensorError",
                       "Error while deserializing header: header too large")
    async with Socket(fake_comfy.url, request["client_id"]) as socket:
        answer = await submit(client, request["prompt"], request["client_id"])
        frames = await socket.until_done(answer["prompt_id"])
    expected = recorded(recorded_run["ws_vae_garbage"])[1:]
    assert [summarize(f) for f in frames] == expected

    error = next(m["data"] for m in messages(frames) if m["type"] == "execution_error")
    recorded_error = next(f["msg"]["data"] for f in recorded_run["ws_vae_garbage"]
                          if f["msg"]["type"] == "execution_error")
    for key in ("node_id", "node_type", "executed", "exception_message", "exception_type"):
        assert error[key] == recorded_error[key], key
    assert error["current_inputs"] == recorded_error["current_inputs"]
    assert sorted(error["current_outputs"]) == sorted(recorded_error["current_outputs"])
    assert set(error) == set(recorded_error)

    history = (await client.get(f"/history/{answer['prompt_id']}")).json()[answer["prompt_id"]]
    expected_history = next(iter(recorded_run["history_vae_garbage"]["body"].values()))
    assert history["status"]["status_str"] == "error" and history["status"]["completed"] is False
    assert [m[0] for m in history["status"]["messages"]] == [
        m[0] for m in expected_history["status"]["messages"]]
    assert history["outputs"] == {} and history["meta"] == {}
    assert history["prompt"][4] == expected_history["prompt"][4]


async def test_partially_valid_prompt_runs_only_valid_outputs(fake_comfy: FakeComfy,
                                                              client: httpx.AsyncClient,
                                                              uploaded: str) -> None:
    recorded_run = trace("trace_runtime_error.json")
    post = recorded_run["unet_fake_post"]
    fake_comfy.set_models("diffusion_models", ["fake.safetensors", "garbage.safetensors"])
    fake_comfy.set_models("text_encoders", [])
    fake_comfy.set_models("vae", ["fake.safetensors", "garbage.safetensors"])
    request = post["request"]["json"]
    async with Socket(fake_comfy.url, request["client_id"]) as socket:
        response = await client.post("/prompt", json=request)
        answer = response.json()
        assert response.status_code == 200
        assert answer["node_errors"] == post["body"]["node_errors"]
        frames = await socket.until_done(answer["prompt_id"])
    assert [summarize(f) for f in frames] == recorded(recorded_run["ws_unet_fake"])

    history = (await client.get(f"/history/{answer['prompt_id']}")).json()[answer["prompt_id"]]
    expected = next(iter(recorded_run["history_unet_fake"]["body"].values()))
    assert history["prompt"][4] == expected["prompt"][4] == ["4", "5"]
    assert history["outputs"]["5"] == expected["outputs"]["5"]
    assert history["outputs"]["4"]["images"][0]["type"] == "temp"
    assert set(history["meta"]) == set(expected["meta"])
    assert history["meta"]["5"] == expected["meta"]["5"]


async def test_messages_only_reach_the_prompts_client(fake_comfy: FakeComfy,
                                                      client: httpx.AsyncClient,
                                                      uploaded: str) -> None:
    async with Socket(fake_comfy.url, "mine") as mine, Socket(fake_comfy.url, "other") as other:
        answer = await submit(client, CAPTURE_GRAPH, "mine")
        await mine.until_done(answer["prompt_id"])
        # the other socket got the status broadcasts only
        while len(other.frames) < 1 + 3:
            await other.recv()
    assert {m["type"] for m in messages(other.frames)} == {"status"}
    assert [summarize(f) for f in other.frames[1:]] == ["status 1", "status 1", "status 0"]


async def test_prompt_without_client_id_broadcasts_progress_only(fake_comfy: FakeComfy,
                                                                  client: httpx.AsyncClient,
                                                                  uploaded: str) -> None:
    async with Socket(fake_comfy.url, "watcher") as watcher:
        answer = await submit(client, CAPTURE_GRAPH)
        assert fake_comfy.wait_idle()
        await watcher.recv()
        while summarize(watcher.frames[-1]) != "status 0":
            await watcher.recv()
    kinds = {m["type"] for m in messages(watcher.frames)}
    assert kinds == {"status", "progress_state"}      # as the real server: no executing etc.
    assert fake_comfy.history(answer["prompt_id"])[answer["prompt_id"]]["status"][
        "status_str"] == "success"


async def test_reconnecting_client_is_told_the_running_node(fake_comfy: FakeComfy,
                                                           client: httpx.AsyncClient,
                                                           uploaded: str) -> None:
    fake_comfy.set_delays(node=30)
    async with Socket(fake_comfy.url, "again") as first:
        answer = await submit(client, CAPTURE_GRAPH, "again")
        while "executing 1" not in [summarize(f) for f in first.frames]:
            await first.recv()
    async with Socket(fake_comfy.url, "again") as second:
        await second.recv()
        assert messages(second.frames)[1] == {"type": "executing", "data": {"node": "1"}}
        await client.post("/interrupt", json={})
        await second.until_done(answer["prompt_id"])

"""Every websocket message recorded from a real ComfyUI 0.3.64 parses into the right dataclass
with the right fields; binary frames are rebuilt from the recorded headers."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from backend.comfy.messages import (
    Executed,
    Executing,
    ExecutionCached,
    ExecutionErrorMessage,
    ExecutionInterrupted,
    ExecutionStart,
    ExecutionSuccess,
    FeatureFlags,
    PreviewImage,
    ProgressMessage,
    ProgressState,
    ProgressText,
    StatusMessage,
    UnknownMessage,
    parse_binary_message,
    parse_text_message,
)
from backend.comfy.types import ImageRef
from backend.comfy.websocket import SocketHub

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "comfy"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
EXPECTED_TYPES = {
    "status": StatusMessage,
    "execution_start": ExecutionStart,
    "execution_cached": ExecutionCached,
    "executing": Executing,
    "progress": ProgressMessage,
    "progress_state": ProgressState,
    "executed": Executed,
    "execution_success": ExecutionSuccess,
    "execution_error": ExecutionErrorMessage,
    "execution_interrupted": ExecutionInterrupted,
    "feature_flags": FeatureFlags,
}


def _load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def _ws_success_lines() -> list[dict[str, Any]]:
    lines = (FIXTURES / "trace_ws_success.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _all_recorded_frames() -> list[dict[str, Any]]:
    frames = [e for e in _ws_success_lines() if "frame" in e]
    connect = _load("trace_ws_connect.json")
    frames += connect["with_client_feature_flags_first_message"]["received"]
    frames += connect["plain_connect"]
    frames += _load("trace_queue_interrupt.json")["ws_messages"]
    runtime = _load("trace_runtime_error.json")
    frames += runtime["ws_vae_garbage"] + runtime["ws_unet_fake"]
    meta = _load("trace_runtime_error_unet_and_preview_metadata.json")
    frames += meta["unet_fake_full_graph_ws"] + meta["savews_with_metadata_flag_ws"]
    return frames


def _rebuild_binary(entry: dict[str, Any]) -> bytes:
    """The trace keeps the first 8 bytes (and the decoded metadata); add a tiny image."""
    head = bytes.fromhex(entry["first8_hex"])
    if entry["event_type_u32be"] == 4:
        meta = json.dumps(entry["metadata"]).encode()
        head = struct.pack(">II", 4, len(meta)) + meta
    return head + PNG


TEXT_FRAMES = [f for f in _all_recorded_frames() if f["frame"] == "text"]
BINARY_FRAMES = [f for f in _all_recorded_frames() if f["frame"] == "binary"]


def test_the_traces_hold_every_message_type() -> None:
    seen = {f["msg"]["type"] for f in TEXT_FRAMES}
    assert seen == set(EXPECTED_TYPES)
    assert {f["event_type_u32be"] for f in BINARY_FRAMES} == {1, 4}


@pytest.mark.parametrize("frame", TEXT_FRAMES, ids=lambda f: f"{f['msg']['type']}@{f['t']}")
def test_recorded_text_frame_parses_to_its_dataclass(frame: dict[str, Any]) -> None:
    raw = frame["msg"]
    message = parse_text_message(raw)
    assert type(message) is EXPECTED_TYPES[raw["type"]]
    data = raw["data"]
    if "prompt_id" in data:
        assert message.prompt_id == data["prompt_id"]
    # the raw JSON string parses the same way as the decoded dict
    assert parse_text_message(json.dumps(raw)) == message


def test_status_fields() -> None:
    first = parse_text_message(_ws_success_lines()[2]["msg"])
    assert first == StatusMessage(0, "cf05b02a-135c-4f00-ab0e-37a3a2ede8fa")
    later = parse_text_message(
        {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 3}}}}
    )
    assert later == StatusMessage(3, None)


def test_success_run_fields_in_order() -> None:
    lines = _ws_success_lines()
    start = next(i for i, e in enumerate(lines) if e.get("section", "").startswith("run1"))
    end = next(i for i, e in enumerate(lines) if e.get("section", "").startswith("run2"))
    messages = [parse_text_message(e["msg"]) for e in lines[start + 1:end]]
    pid = "480da2cb-8d37-4e73-a00d-02a96af8fa38"
    assert ExecutionStart(pid, 1795731683664) in messages
    assert ExecutionCached(pid, ()) in messages
    executing = [m.node for m in messages if isinstance(m, Executing)]
    assert executing == ["1", "2", "3", "4", None]
    executed = [m for m in messages if isinstance(m, Executed)]
    assert len(executed) == 1 and executed[0].node == "4"
    assert executed[0].images == [ImageRef("capture_00001_.png", "", "output")]
    states = [m for m in messages if isinstance(m, ProgressState)]
    last = states[-1].nodes["4"]
    assert (last.node_id, last.value, last.max, last.state) == ("4", 1.0, 1.0, "finished")
    assert last.parent_node_id is None and last.display_node_id == "4"
    # the definite end comes before executing{node: null}
    kinds = [type(m) for m in messages]
    assert kinds.index(ExecutionSuccess) < len(kinds) - 1 and kinds[-1] is Executing


def test_cached_rerun_resends_executed_with_the_old_file() -> None:
    lines = _ws_success_lines()
    start = next(i for i, e in enumerate(lines) if e.get("section", "").startswith("run2"))
    messages = [parse_text_message(e["msg"]) for e in lines[start + 1:start + 9] if "msg" in e]
    cached = next(m for m in messages if isinstance(m, ExecutionCached))
    assert cached.nodes == ("1", "2", "3", "4")
    executed = next(m for m in messages if isinstance(m, Executed))
    assert executed.images[0].filename == "capture_00001_.png"


def test_progress_fields() -> None:
    msg = parse_text_message({"type": "progress", "data": {
        "value": 3, "max": 20, "prompt_id": "p", "node": "7"}})
    assert msg == ProgressMessage("p", "7", 3, 20)


def test_execution_error_fields() -> None:
    frame = next(f for f in _load("trace_runtime_error.json")["ws_vae_garbage"]
                 if f["msg"]["type"] == "execution_error")
    msg = parse_text_message(frame["msg"])
    assert isinstance(msg, ExecutionErrorMessage)
    assert (msg.prompt_id, msg.node_id, msg.node_type) == (
        "a55b5c23-5e51-45b8-abf5-d79623b94040", "1", "VAELoader")
    assert msg.exception_type == "safetensors._safetensors_rust.SafetensorError"
    assert msg.exception_message.startswith("Error while deserializing header")
    assert msg.executed == () and len(msg.traceback) == 7


def test_execution_interrupted_fields() -> None:
    frame = next(f for f in _load("trace_queue_interrupt.json")["ws_messages"]
                 if f["msg"]["type"] == "execution_interrupted")
    msg = parse_text_message(frame["msg"])
    assert msg == ExecutionInterrupted(
        "46a05b43-e408-4c1c-98e9-c8583fe748fe", "11", "ImageScale", ("10",))


def test_feature_flags_reply() -> None:
    frame = _load("trace_ws_connect.json")["with_client_feature_flags_first_message"]["received"][1]
    msg = parse_text_message(frame["msg"])
    assert msg == FeatureFlags({"supports_preview_metadata": True, "max_upload_size": 104857600})


@pytest.mark.parametrize("entry", BINARY_FRAMES, ids=lambda e: f"type{e['event_type_u32be']}")
def test_recorded_binary_frames(entry: dict[str, Any]) -> None:
    msg = parse_binary_message(_rebuild_binary(entry))
    assert isinstance(msg, PreviewImage)
    assert msg.image == PNG and msg.mime == "image/png"
    if entry["event_type_u32be"] == 4:
        assert msg.prompt_id == entry["metadata"]["prompt_id"]
        assert msg.node_id == entry["metadata"]["node_id"] == "3"
    else:
        assert msg.prompt_id is None and msg.node_id is None


def test_binary_jpeg_text_and_garbage() -> None:
    jpeg = parse_binary_message(struct.pack(">II", 1, 1) + b"\xff\xd8\xff")
    assert jpeg == PreviewImage(b"\xff\xd8\xff", "image/jpeg")
    text = parse_binary_message(struct.pack(">II", 3, 2) + b"12" + "step 3/20 ✓".encode())
    assert text == ProgressText("12", "step 3/20 ✓")
    assert isinstance(parse_binary_message(b"\x00\x00"), UnknownMessage)
    assert parse_binary_message(struct.pack(">II", 9, 0)) == UnknownMessage("binary:9", {"length": 8})
    # a metadata length past the end of the frame
    assert isinstance(parse_binary_message(struct.pack(">II", 4, 999) + b"{}"), UnknownMessage)
    assert isinstance(parse_binary_message(struct.pack(">II", 3, 50) + b"x"), UnknownMessage)


def test_tolerant_of_new_and_missing_fields() -> None:
    newer = parse_text_message({"type": "executing", "data": {
        "node": "5", "prompt_id": "p", "display_node": "5", "brand_new": {"x": 1}}})
    assert newer == Executing("p", "5")
    sparse = parse_text_message({"type": "execution_error", "data": {"prompt_id": "p"}})
    assert sparse == ExecutionErrorMessage("p", None, None, "", "")
    assert parse_text_message({"type": "progress_state", "data": {}}) == ProgressState("", {})
    assert parse_text_message({"type": "execution_cached", "data": {"prompt_id": "p"}}) == (
        ExecutionCached("p", ()))
    assert parse_text_message({"type": "status", "data": {}}) == StatusMessage(None, None)


def test_unknown_and_malformed_messages() -> None:
    assert parse_text_message({"type": "crystools.monitor", "data": {"cpu": 3}}) == (
        UnknownMessage("crystools.monitor", {"cpu": 3}))
    assert parse_text_message({"type": "executed", "data": "oops"}) == UnknownMessage("executed", "oops")
    assert parse_text_message("not json") == UnknownMessage("invalid_json", "not json")
    assert parse_text_message([1, 2]) == UnknownMessage("invalid", [1, 2])  # type: ignore[arg-type]


async def test_hub_routes_each_recorded_message_to_its_prompt() -> None:
    """Replay the 4-prompt session through the hub's router: each watcher sees only its own
    prompt's messages, type-1 previews go to the prompt executing at the time, status goes to
    listeners."""
    hub = SocketHub("ws://127.0.0.1:9/ws?clientId=x")
    lines = _ws_success_lines()
    pids = [e["post_prompt_response"]["body"]["prompt_id"] for e in lines if "section" in e]
    watchers = {pid: hub.watch(pid) for pid in pids}
    statuses: list[Any] = []
    hub.add_listener(statuses.append)
    for entry in lines:
        if entry.get("frame") == "text":
            hub.route(parse_text_message(entry["msg"]))
        elif entry.get("frame") == "binary":
            hub.route(parse_binary_message(_rebuild_binary(entry)))
    received = {pid: [] for pid in pids}
    for pid, watcher in watchers.items():
        while not watcher._queue.empty():
            received[pid].append(await watcher.get())
    for pid, messages in received.items():
        assert messages and all(getattr(m, "prompt_id", None) == pid for m in messages)
        assert sum(isinstance(m, ExecutionSuccess) for m in messages) == 1
    previews = [m for m in received[pids[3]] if isinstance(m, PreviewImage)]
    assert len(previews) == 1 and previews[0].prompt_id == pids[3]
    assert all(isinstance(s, StatusMessage) for s in statuses)
    assert [s.queue_remaining for s in statuses][:3] == [0, 1, 1]
    assert hub.last_status == StatusMessage(0, None)
    hub.unwatch(pids[0])
    assert pids[0] not in hub.watched

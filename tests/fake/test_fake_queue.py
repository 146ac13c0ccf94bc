"""One prompt at a time: pending, front, delete, interrupt, clear, history — as recorded."""

from __future__ import annotations

import httpx

from tests.fake.helpers import (
    CAPTURE_GRAPH,
    Socket,
    recorded,
    submit,
    summarize,
    trace,
)
from tests.fake_comfy import FakeComfy

RECORDED = trace("trace_queue_interrupt.json")


def _graph(width: int) -> dict:
    """The recorded slow graph (LoadImage → six ImageScale → PreviewImage) at small sizes."""
    graph = RECORDED["post_prompt_slow"]["request"]["json"]["prompt"]
    small = {k: {**v, "inputs": dict(v["inputs"])} for k, v in graph.items()}
    for node_id, node in small.items():
        if node["class_type"] == "ImageScale":
            node["inputs"]["width"] = node["inputs"]["height"] = width + int(node_id)
    return small


async def _until(socket: Socket, line: str) -> None:
    while line not in [summarize(f) for f in socket.frames[-3:]]:
        await socket.recv()


async def test_recorded_queue_session(fake_comfy: FakeComfy, client: httpx.AsyncClient,
                                      uploaded: str) -> None:
    """Slow S runs; P waits; P2 jumps the queue (front); P deleted; S interrupted; P2 runs and
    is interrupted by id; queue cleared. Same bodies and frames as the real session."""
    assert (await client.get("/queue")).json() == RECORDED["idle"]["body"]
    client_id = "975254af-8cb2-478b-bf03-2ddc427e6e99"
    async with Socket(fake_comfy.url, client_id) as socket:
        warm = await submit(client, CAPTURE_GRAPH, client_id)   # LoadImage cached, as recorded
        await socket.until_done(warm["prompt_id"])
        start = len(socket.frames)
        fake_comfy.set_delays(node=30)          # slow nodes (they end early on interrupt)

        slow = await submit(client, _graph(1), client_id)
        await _until(socket, "executing 10")
        pending = await submit(client, _graph(2), client_id)
        front = await submit(client, _graph(3), client_id, front=True)
        assert (slow["number"], pending["number"], front["number"]) == (1, 2, -3)

        busy = (await client.get("/queue")).json()
        assert [i[1] for i in busy["queue_running"]] == [slow["prompt_id"]]
        assert [i[1] for i in busy["queue_pending"]] == [front["prompt_id"], pending["prompt_id"]]
        item = busy["queue_running"][0]
        assert item[0] == 1 and item[3] == {"client_id": client_id} and item[4] == ["99"]
        assert item[2] == _graph(1)
        assert (await client.get("/prompt")).json() == RECORDED["get_prompt_while_busy"]["body"]

        deleted = await client.post("/queue", json={"delete": [pending["prompt_id"]]})
        assert (deleted.status_code, deleted.content) == (200, b"")
        after = (await client.get("/queue")).json()
        assert [i[1] for i in after["queue_pending"]] == [front["prompt_id"]]

        stopped = await client.post("/interrupt", json={})
        assert (stopped.status_code, stopped.content) == (200, b"")
        await socket.until_done(slow["prompt_id"])
        await _until(socket, "executing 10")
        not_running = await client.post("/interrupt", json={"prompt_id": slow["prompt_id"]})
        assert not_running.status_code == 200
        await client.post("/interrupt", json={"prompt_id": front["prompt_id"]})
        await socket.until_done(front["prompt_id"])
        cleared = await client.post("/queue", json={"clear": True})
        assert (cleared.status_code, cleared.content) == (200, b"")
        await socket.recv()

    assert [summarize(f) for f in socket.frames[start:]] == recorded(RECORDED["ws_messages"])[1:]
    counters = fake_comfy.counters
    assert (counters["interrupts"], counters["interrupts_applied"]) == (3, 2)

    interrupted = (await client.get(f"/history/{slow['prompt_id']}")).json()
    expected = RECORDED["history_interrupted"]["body"]
    (entry,), (recorded_entry,) = interrupted.values(), expected.values()
    assert entry["status"]["status_str"] == "error" and entry["status"]["completed"] is False
    assert [m[0] for m in entry["status"]["messages"]] == [
        m[0] for m in recorded_entry["status"]["messages"]]
    last = entry["status"]["messages"][-1][1]
    recorded_last = recorded_entry["status"]["messages"][-1][1]
    assert {k: last[k] for k in ("node_id", "node_type", "executed")} == {
        k: recorded_last[k] for k in ("node_id", "node_type", "executed")}
    assert entry["outputs"] == {} and entry["meta"] == {}
    assert (await client.get(f"/history/{pending['prompt_id']}")).json() == {}   # deleted
    assert (await client.get("/queue")).json() == RECORDED["queue_idle_after"]["body"]

    last_two = (await client.get("/history", params={"max_items": 2})).json()
    assert list(last_two) == [slow["prompt_id"], front["prompt_id"]]
    assert last_two[front["prompt_id"]]["prompt"][0] == -3


async def test_interrupt_while_idle_does_not_touch_the_next_prompt(
        fake_comfy: FakeComfy, client: httpx.AsyncClient, uploaded: str) -> None:
    await client.post("/interrupt", data=b"")          # no body at all is fine too
    answer = await submit(client, CAPTURE_GRAPH)
    assert fake_comfy.wait_idle()
    entry = fake_comfy.history(answer["prompt_id"])[answer["prompt_id"]]
    assert entry["status"]["status_str"] == "success"


async def test_history_routes(fake_comfy: FakeComfy, client: httpx.AsyncClient,
                              uploaded: str) -> None:
    recorded_history = trace("trace_history.json")
    ids = []
    for width in (128, 128, 129):
        graph = {k: {**v, "inputs": dict(v["inputs"])} for k, v in CAPTURE_GRAPH.items()}
        graph["2"]["inputs"]["width"] = width
        ids.append((await submit(client, graph, "h"))["prompt_id"])
    assert fake_comfy.wait_idle()

    first = (await client.get(f"/history/{ids[0]}")).json()
    expected = recorded_history["success"]["body"]
    (entry,), (recorded_entry,) = first.values(), expected.values()
    assert set(entry) == set(recorded_entry)
    assert entry["outputs"] == recorded_entry["outputs"]
    assert entry["meta"] == recorded_entry["meta"]
    assert entry["prompt"][0] == 0 and entry["prompt"][3] == {"client_id": "h"}
    assert entry["prompt"][4] == ["4"]
    cached = (await client.get(f"/history/{ids[1]}")).json()[ids[1]]
    assert cached["outputs"] == entry["outputs"]       # the old file names
    assert cached["status"]["messages"][1][1]["nodes"] == ["1", "2", "3", "4"]

    assert list((await client.get("/history")).json()) == ids
    assert list((await client.get("/api/history", params={"max_items": 2})).json()) == ids[1:]
    assert list((await client.get("/history", params={"max_items": 1, "offset": 0})).json()) == (
        ids[:1])
    unknown = await client.get("/history/00000000-0000-0000-0000-000000000000")
    assert (unknown.status_code, unknown.json()) == (200, recorded_history["unknown_id"]["body"])

    response = await client.post("/history", json={"delete": [ids[0]]})
    assert (response.status_code, response.content) == (200, b"")
    assert list((await client.get("/history")).json()) == ids[1:]
    await client.post("/history", json={"clear": True})
    assert (await client.get("/history")).json() == {}


async def test_client_prompt_id_number_and_extra_data(fake_comfy: FakeComfy,
                                                      client: httpx.AsyncClient,
                                                      uploaded: str) -> None:
    recorded_run = trace("trace_runtime_error_unet_and_preview_metadata.json")
    extra = recorded_run["extra_data_post"]["request"]["json"]
    answer = await submit(client, extra["prompt"], extra["client_id"],
                          extra_data={**extra["extra_data"], "api_key_comfy_org": "secret"},
                          prompt_id="my-own-id", number=7)
    assert answer["prompt_id"] == "my-own-id" and answer["number"] == 7.0
    assert fake_comfy.wait_idle()
    entry = fake_comfy.history("my-own-id")["my-own-id"]
    recorded_entry = next(iter(recorded_run["extra_data_history"]["body"].values()))
    assert entry["prompt"][3] == recorded_entry["prompt"][3]   # secrets are not kept
    assert entry["meta"] == recorded_entry["meta"]


async def test_partial_execution_targets(fake_comfy: FakeComfy, client: httpx.AsyncClient,
                                         uploaded: str) -> None:
    graph = {k: {**v, "inputs": dict(v["inputs"])} for k, v in CAPTURE_GRAPH.items()}
    graph["5"] = {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}
    answer = await submit(client, graph, "p", partial_execution_targets=["5"])
    assert fake_comfy.wait_idle()
    entry = fake_comfy.history(answer["prompt_id"])[answer["prompt_id"]]
    assert entry["prompt"][4] == ["5"] and list(entry["outputs"]) == ["5"]
    assert not list(fake_comfy.output_dir.iterdir())            # SaveImage did not run

    response = await client.post("/prompt", json={"prompt": graph,
                                                  "partial_execution_targets": ["3"]})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "prompt_no_outputs"

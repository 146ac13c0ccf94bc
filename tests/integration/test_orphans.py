"""Prompts a killed studio process left in ComfyUI's queue are removed on the next start —
only those: other clients' prompts, another studio's, and this process's own stay.
Issue 9 item 7."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from backend.comfy import (
    ComfyClient,
    OrphanReport,
    remove_orphans,
    start_orphan_sweep,
)
from backend.comfy.types import STUDIO_MARK, QueueItem, QueueSnapshot
from backend.identity import load_or_create_studio_id
from backend.library import LibraryConfig
from tests.fake_comfy import FakeComfy
from tests.integration.test_client_faults import sampler_graph

STUDIO = "studio-under-test"
HANG_GUARD_S = 20


def graph(seed: int) -> dict[str, Any]:
    g = sampler_graph(steps=40)
    g["5"]["inputs"]["seed"] = seed
    return g


@pytest.fixture
async def clients(fake_comfy: FakeComfy) -> AsyncIterator[dict[str, ComfyClient]]:
    made = {
        "previous": ComfyClient(fake_comfy.url, studio_id=STUDIO),   # the killed process
        "current": ComfyClient(fake_comfy.url, studio_id=STUDIO),    # the restarted one
        "other_studio": ComfyClient(fake_comfy.url, studio_id="another-studio"),
        "foreign": ComfyClient(fake_comfy.url),                      # e.g. ComfyUI's own page
    }
    try:
        yield made
    finally:
        for client in made.values():
            await client.aclose()


async def _wait_running(fake: FakeComfy, prompt_id: str) -> None:
    async with asyncio.timeout(HANG_GUARD_S):
        while fake.queue_ids()[0] != [prompt_id]:  # noqa: ASYNC110 - polling the fake
            await asyncio.sleep(0.02)


async def test_only_the_previous_process_prompts_are_removed(
    fake_comfy: FakeComfy, clients: dict[str, ComfyClient], caplog: pytest.LogCaptureFixture
) -> None:
    fake_comfy.set_delays(step=0.1)
    previous, current = clients["previous"], clients["current"]
    running = (await previous.submit(graph(1))).prompt_id
    await _wait_running(fake_comfy, running)
    foreign = (await clients["foreign"].submit(graph(2))).prompt_id
    other_studio = (await clients["other_studio"].submit(graph(3))).prompt_id
    left_pending = (await previous.submit(graph(4))).prompt_id
    ours_now = (await current.submit(graph(5))).prompt_id

    queue = await current.queue()
    marks = {i.prompt_id: (i.studio_id, i.studio_session) for i in queue.running + queue.pending}
    assert marks[running] == (STUDIO, previous.session_id)
    assert marks[foreign] == (None, None)
    assert marks[other_studio] == ("another-studio", clients["other_studio"].session_id)

    with caplog.at_level(logging.INFO, logger="backend.comfy.orphans"):
        report = await remove_orphans(current, STUDIO)
    assert report == OrphanReport(interrupted=(running,), deleted=(left_pending,))
    assert "removed 2 prompts a previous studio process left in ComfyUI's queue" in caplog.text

    async with asyncio.timeout(HANG_GUARD_S):   # the interrupt lands at the next step
        while fake_comfy.queue_ids()[0] == [running]:  # noqa: ASYNC110 - polling the fake
            await asyncio.sleep(0.02)
    entry = fake_comfy.history(running)[running]
    assert entry["status"]["status_str"] == "error"
    assert any(m[0] == "execution_interrupted" for m in entry["status"]["messages"])
    run_now, pending = fake_comfy.queue_ids()
    assert set(run_now + pending) == {foreign, other_studio, ours_now}
    assert fake_comfy.history(left_pending) == {}       # deleted before it ran

    # a second sweep finds nothing more
    assert (await remove_orphans(current, STUDIO)).removed == 0


async def test_a_running_prompt_that_is_not_an_orphan_is_not_interrupted(
    fake_comfy: FakeComfy, clients: dict[str, ComfyClient]
) -> None:
    fake_comfy.set_delays(step=0.05)
    foreign = (await clients["foreign"].submit(graph(6))).prompt_id
    await _wait_running(fake_comfy, foreign)
    left_pending = (await clients["previous"].submit(graph(7))).prompt_id
    report = await remove_orphans(clients["current"], STUDIO)
    assert report == OrphanReport(deleted=(left_pending,))
    assert fake_comfy.counters["interrupts"] == 0
    assert fake_comfy.queue_ids() == ([foreign], [])


async def test_the_mark_sits_beside_the_callers_extra_data(
    fake_comfy: FakeComfy, clients: dict[str, ComfyClient]
) -> None:
    previous = clients["previous"]
    fake_comfy.set_delays(step=0.05)
    prompt_id = (await previous.submit(graph(8), extra_data={"extra_pnginfo": {"a": 1}})).prompt_id
    assert fake_comfy.wait_idle(10)
    extra = fake_comfy.history(prompt_id)[prompt_id]["prompt"][3]
    assert extra["extra_pnginfo"] == {"a": 1}
    assert extra[STUDIO_MARK] == {"studio": STUDIO, "session": previous.session_id}
    assert extra["client_id"] == previous.client_id


async def test_comfyui_down_is_a_report_not_an_error(fake_comfy: FakeComfy) -> None:
    fake_comfy.stop()
    async with ComfyClient(fake_comfy.url, studio_id=STUDIO) as client:
        report = await remove_orphans(client, STUDIO)
    assert not report.checked and report.removed == 0
    assert report.error and "not reachable" in report.error


async def test_the_sweep_is_retried_once_comfyui_answers(
    fake_comfy: FakeComfy, clients: dict[str, ComfyClient]
) -> None:
    fake_comfy.set_delays(step=0.2)      # 8 s: still running after the retries
    left = (await clients["previous"].submit(graph(9))).prompt_id
    await _wait_running(fake_comfy, left)
    fake_comfy.fail_http("GET /queue", times=2)     # the first two looks fail
    current = clients["current"]
    current.open_socket()
    async with asyncio.timeout(HANG_GUARD_S):
        report = await start_orphan_sweep(current, STUDIO)
    assert report.interrupted == (left,)
    assert fake_comfy.counters["requests"]["GET /queue"] >= 3


async def test_the_sweep_waits_for_a_comfyui_that_is_down_at_start(fake_comfy: FakeComfy) -> None:
    fake_comfy.stop()
    async with ComfyClient(fake_comfy.url, studio_id=STUDIO) as client:
        client.open_socket()
        sweep = start_orphan_sweep(client, STUDIO)
        await asyncio.sleep(0.3)
        assert not sweep.done()
        fake_comfy.start()
        async with asyncio.timeout(HANG_GUARD_S):
            report = await sweep
    assert report.checked and report.removed == 0


# --- the studio id ------------------------------------------------------------------------


def test_the_studio_id_is_created_once_and_kept(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = load_or_create_studio_id(data)
    assert (data / "studio-id").read_text().strip() == first
    assert load_or_create_studio_id(data) == first          # survives a restart
    assert load_or_create_studio_id(tmp_path / "elsewhere") != first


def test_an_unwritable_data_dir_falls_back_to_a_stable_derived_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    unwritable = blocker / "data"        # a folder cannot be made inside a file (even as root)
    with caplog.at_level(logging.WARNING, logger="backend.identity"):
        first = load_or_create_studio_id(unwritable, workflows_dir=tmp_path / "workflows")
    again = load_or_create_studio_id(unwritable, workflows_dir=tmp_path / "workflows")
    assert first == again and first.startswith("host-")
    assert first in caplog.text
    assert load_or_create_studio_id(unwritable, workflows_dir=tmp_path / "other") != first


def test_the_data_dir_comes_from_the_environment() -> None:
    assert LibraryConfig.from_env({"STUDIO_DATA_DIR": "/srv/studio"}).data_dir == Path("/srv/studio")
    assert LibraryConfig.from_env({}).data_dir == Path("data")


def test_recorded_queue_items_parse_without_a_mark_and_marked_ones_with_it(
    fixtures_dir: Path,
) -> None:
    # ComfyUI 0.3.64's /queue items: [number, prompt_id, prompt, extra_data, outputs]
    trace = json.loads((fixtures_dir / "trace_queue_interrupt.json").read_text())
    snapshot = QueueSnapshot.from_body(trace["busy_one_running_two_pending"]["body"])
    assert snapshot.running and snapshot.pending
    assert all(i.studio_id is None and i.client_id for i in snapshot.running + snapshot.pending)
    raw = trace["busy_one_running_two_pending"]["body"]["queue_running"][0]
    marked = [*raw[:3], {**raw[3], STUDIO_MARK: {"studio": "s", "session": "x"}}, raw[4]]
    item = QueueItem.from_list(marked)
    assert item is not None and (item.studio_id, item.studio_session) == ("s", "x")
    assert QueueItem.from_list([*raw[:3], {STUDIO_MARK: "junk"}, raw[4]]) is not None

"""Scheduling through `studio.run` against the fake ComfyUI: concurrent generate and edit jobs
swap models less under "group" than under "fifo", each job gets its own result, waiting jobs
see their studio queue position, and a job closed while waiting never reaches ComfyUI."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from PIL import Image

from backend.comfy import ComfyClient
from backend.jobs import Failed, Finished, Queued, Started, Studio
from backend.modes.edit import EditRequest
from backend.modes.generate import GenerateRequest
from backend.operations.sizing import working_size
from backend.scheduler import QueueFull, Scheduler, SchedulerConfig
from backend.settings import Settings
from backend.workflows import TemplateLibrary
from tests.fake_comfy import FakeComfy

pytestmark = pytest.mark.timeout(60)

BUDGET = 320 * 320  # small sampling sizes keep the fake's numpy work quick


@pytest.fixture
async def client(fake_comfy: FakeComfy) -> AsyncIterator[ComfyClient]:
    client = ComfyClient(fake_comfy.url)
    try:
        yield client
    finally:
        await client.aclose()


def make_studio(fake: FakeComfy, client: ComfyClient, scheduling: str) -> Studio:
    settings = Settings(
        comfy_url=fake.url, job_timeout_s=30.0, max_sampling_pixels=BUDGET, scheduling=scheduling
    )
    studio = Studio(client, settings, TemplateLibrary(settings.workflows_dir))
    # Positions are re-read on a throttled tick; here every change should show.
    config = replace(SchedulerConfig.from_settings(settings), position_refresh_s=0)
    studio.scheduler = Scheduler(config)
    return studio


def requests() -> list[Any]:
    """Generate and edit interleaved; each with its own seed, prompt and size."""
    jobs: list[Any] = []
    for i in range(4):
        jobs.append(GenerateRequest(f"lighthouse {i}", 256 + 64 * i, 256, seed=100 + i, steps=3))
        source = Image.new("RGB", (320 + 32 * i, 240), (40 * i, 90, 160))
        jobs.append(EditRequest(source, f"night {i}", seed=200 + i, steps=3))
    return jobs


def expected_size(request: Any) -> tuple[int, int]:
    if isinstance(request, GenerateRequest):
        return request.width, request.height
    return working_size(*request.image.size, max_pixels=BUDGET)


async def run_all(studio: Studio, jobs: list[Any]) -> tuple[list[list[Any]], list[int]]:
    """Queue every job while a placeholder holds ComfyUI's slot, so they all wait in the
    studio first (arrival order = list order); then let them go. Returns each job's events
    and the order in which the jobs started."""
    started: list[int] = []
    waiting = [asyncio.Event() for _ in jobs]

    async def one(index: int, request: Any) -> list[Any]:
        events = []
        async for event in studio.run(request):
            if isinstance(event, Queued) and not event.prompt_id:
                waiting[index].set()
            elif isinstance(event, Started):
                started.append(index)
            events.append(event)
        return events

    blocker = studio.scheduler.enter(None)
    tasks = []
    for i, request in enumerate(jobs):
        tasks.append(asyncio.create_task(one(i, request)))
        await asyncio.wait_for(waiting[i].wait(), 10)
        assert len(studio.scheduler.waiting()) == i + 1
    blocker.leave()
    return list(await asyncio.gather(*tasks)), started


@pytest.mark.parametrize(
    ("scheduling", "swaps", "order"),
    [
        ("fifo", 7, [0, 1, 2, 3, 4, 5, 6, 7]),
        # max_skips=3: the first edit job (1) lets the three later generate jobs pass, no more.
        ("group", 1, [0, 2, 4, 6, 1, 3, 5, 7]),
    ],
)
async def test_concurrent_jobs_swap_less_when_grouped(
    fake_comfy: FakeComfy, client: ComfyClient, scheduling: str, swaps: int, order: list[int]
) -> None:
    fake_comfy.set_delays(load=0.05)
    studio = make_studio(fake_comfy, client, scheduling)
    jobs = requests()
    results, started = await run_all(studio, jobs)

    assert started == order
    assert fake_comfy.counters["model_swaps"] == swaps
    assert fake_comfy.counters["prompts_executed"] == len(jobs)
    prompt_ids = set()
    for request, events in zip(jobs, results, strict=True):
        done = events[-1]
        assert isinstance(done, Finished), done
        assert not any(isinstance(e, Failed) for e in events)
        assert done.mode == request.mode and done.seed == request.seed
        assert [i.size for i in done.images] == [expected_size(request)]
        assert request.prompt in json.dumps(done.workflow)
        prompt_ids.add(done.prompt_id)
        # Waiting in the studio (no prompt id yet), then ComfyUI's own Queued.
        queued = [e for e in events if isinstance(e, Queued)]
        assert queued[0].prompt_id == "" and queued[0].position >= 1
        assert done.timings["studio_wait_s"] > 0   # it did wait in the studio's line
        assert queued[-1].prompt_id == done.prompt_id
        assert events.index(queued[-1]) < next(
            i for i, e in enumerate(events) if isinstance(e, Started)
        )
    assert len(prompt_ids) == len(jobs)
    assert studio.scheduler.in_flight == 0 and studio.scheduler.waiting() == ()


async def test_positions_count_down_in_the_studio_queue(
    fake_comfy: FakeComfy, client: ComfyClient
) -> None:
    studio = make_studio(fake_comfy, client, "fifo")
    results, _ = await run_all(studio, [GenerateRequest(f"p{i}", 256, 256, steps=2) for i in range(3)])
    waiting = [[e.position for e in events if isinstance(e, Queued) and not e.prompt_id]
               for events in results]
    # Positions while the placeholder ran, then while each earlier job ran in ComfyUI.
    assert waiting == [[1], [2, 1], [3, 2, 1]]


async def test_closing_a_waiting_job_never_reaches_comfyui(
    fake_comfy: FakeComfy, client: ComfyClient
) -> None:
    studio = make_studio(fake_comfy, client, "group")
    blocker = studio.scheduler.enter(None)
    events = studio.run(GenerateRequest("never sent", 256, 256))
    first = await anext(events)
    assert first == Queued(1, "")
    assert len(studio.scheduler.waiting()) == 1
    await events.aclose()
    assert studio.scheduler.waiting() == ()
    blocker.leave()
    assert studio.scheduler.in_flight == 0
    counters = fake_comfy.counters
    assert counters["prompts_posted"] == 0 and counters["interrupts"] == 0
    assert counters["requests"].get("POST /prompt", 0) == 0
    # The studio still runs the next job normally.
    after = [e async for e in studio.run(GenerateRequest("sent", 256, 256, steps=2))]
    assert isinstance(after[-1], Finished)


async def test_a_waiting_job_is_not_decoded_before_its_turn(
    fake_comfy: FakeComfy, client: ComfyClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 9: a waiting job holds the bytes that were sent, never decoded pixels."""
    studio = make_studio(fake_comfy, client, "fifo")
    spec = studio.registry.get("edit")
    prepared: list[str] = []
    real = spec.operation.prepare

    def spy(request: Any, settings: Settings) -> Any:
        prepared.append(request.prompt)
        return real(request, settings)

    monkeypatch.setattr(spec.operation, "prepare", spy)
    blocker = studio.scheduler.enter(None)
    source = Image.new("RGB", (640, 480), (10, 20, 30))
    events = studio.run(EditRequest(image=_png(source), prompt="make it red", steps=2))
    assert await anext(events) == Queued(1, "")
    assert prepared == []                      # waiting: nothing decoded
    blocker.leave()
    rest = [e async for e in events]
    assert prepared == ["make it red"] and isinstance(rest[-1], Finished)


async def test_a_full_line_refuses_at_once(fake_comfy: FakeComfy, client: ComfyClient) -> None:
    settings = Settings(comfy_url=fake_comfy.url, max_queue=1, max_queue_per_person=5)
    studio = Studio(client, settings, TemplateLibrary(settings.workflows_dir))
    blocker = studio.scheduler.enter(None)
    waiting = studio.admit(GenerateRequest("first", 256, 256), owner="ann")
    with pytest.raises(QueueFull):
        studio.admit(GenerateRequest("second", 256, 256), owner="bob")
    refused = [e async for e in studio.run(GenerateRequest("third", 256, 256), owner="bob")]
    assert len(refused) == 1 and isinstance(refused[0], Failed) and refused[0].kind == "busy"
    assert "busy" in refused[0].message
    waiting.turn.leave()
    blocker.leave()
    assert studio.scheduler.waiting_count == 0 and studio.scheduler.in_flight == 0


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()

"""The desk against the fake ComfyUI: jobs run on their own, every result is saved once, two
overlapping jobs of one person both land, stopping says what happened, batches are admitted
whole or not at all, and a late follower still gets the end of a job."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from backend.comfy import ComfyClient
from backend.desk import Desk, JobState, Saved, StopResult, Who
from backend.events import Failed, Finished, Started
from backend.jobs import Studio
from backend.library import ItemQuery, Library, LibraryConfig, LibrarySaveError
from backend.modes.edit import EditRequest
from backend.modes.generate import GenerateRequest
from backend.scheduler import QueueFull
from backend.settings import Settings
from backend.workflows import TemplateLibrary
from tests.fake_comfy import FakeComfy

ANN = Who("user:ann", "user:ann", "ui")
BOB = Who("user:bob", "user:bob", "api")


@pytest.fixture
async def client(fake_comfy: FakeComfy) -> AsyncIterator[ComfyClient]:
    async with ComfyClient(fake_comfy.url) as c:
        yield c


@pytest.fixture
async def library(tmp_path: Path) -> AsyncIterator[Library]:
    lib = Library(LibraryConfig(data_dir=tmp_path / "data"))
    await lib.open()
    try:
        yield lib
    finally:
        await lib.close()


def make_desk(fake: FakeComfy, client: ComfyClient, library: Library | None, **kw: int) -> Desk:
    settings = Settings(comfy_url=fake.url, job_timeout_s=30.0, **kw)  # type: ignore[arg-type]
    studio = Studio(client, settings, TemplateLibrary(settings.workflows_dir))
    return Desk(studio, library)


def png(size: tuple[int, int] = (320, 240)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (40, 90, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_a_job_runs_on_its_own_and_its_result_is_saved_once(
    fake_comfy: FakeComfy, client: ComfyClient, library: Library
) -> None:
    desk = make_desk(fake_comfy, client, library)
    source = png()
    job = desk.submit(EditRequest(image=source, prompt="make it red", steps=2, seed=5), ANN)
    events = [e async for e in job.events()]
    assert isinstance(events[-1], Saved) and isinstance(events[-2], Finished)
    assert any(isinstance(e, Started) for e in events)
    [item] = events[-1].items
    assert job.state is JobState.FINISHED and job.view().item_ids == (item.id,)
    assert (item.owner, item.surface, item.mode, item.seed, item.prompt) == (
        "user:ann", "ui", "edit", 5, "make it red")
    assert [i.path.read_bytes() for i in item.inputs] == [source]   # kept as it was sent
    page = await library.page("user:ann", ItemQuery())
    assert [i.id for i in page.items] == [item.id]


async def test_two_overlapping_jobs_of_one_person_both_land(
    fake_comfy: FakeComfy, client: ComfyClient, library: Library
) -> None:
    """Issue 10 item 1: whatever order they finish in, every result lands, once."""
    fake_comfy.set_delays(step=0.02)
    desk = make_desk(fake_comfy, client, library)
    first = desk.submit(GenerateRequest("a fox", 256, 256, steps=6), ANN)
    second = desk.submit(EditRequest(image=png(), prompt="night", steps=2), ANN)
    outcomes = await asyncio.gather(first.outcome(), second.outcome())
    assert all(isinstance(o, Finished) for o in outcomes)
    page = await library.page("user:ann", ItemQuery())
    assert sorted(i.mode for i in page.items) == ["edit", "generate"]
    assert [v.state for v in desk.views("user:ann")] == [JobState.FINISHED] * 2


async def test_stopping_says_what_happened(
    fake_comfy: FakeComfy, client: ComfyClient, library: Library
) -> None:
    fake_comfy.set_delays(step=0.05)
    desk = make_desk(fake_comfy, client, library)
    running = desk.submit(GenerateRequest("slow", 256, 256, steps=40), ANN)
    waiting = desk.submit(GenerateRequest("never", 256, 256, steps=2), ANN)
    async for event in running.events():
        if isinstance(event, Started):
            break
    assert desk.stop("user:ann", waiting.id) is StopResult.STOPPED_WAITING
    assert desk.stop("user:ann", running.id) is StopResult.STOPPED_RUNNING
    for job in (running, waiting):
        end = await job.outcome()
        assert isinstance(end, Failed) and end.kind == "interrupted"
        assert job.state is JobState.STOPPED
    assert desk.stop("user:ann", running.id) is StopResult.ALREADY_DONE
    assert desk.stop("user:bob", running.id) is StopResult.NOT_FOUND      # not bob's
    await asyncio.sleep(0.3)
    counters = fake_comfy.counters
    assert counters["interrupts"] >= 1 and counters["prompts_posted"] == 1   # not the waiting one
    assert not (await library.page("user:ann", ItemQuery())).items


async def test_a_batch_is_admitted_whole_or_not_at_all(
    fake_comfy: FakeComfy, client: ComfyClient, library: Library
) -> None:
    desk = make_desk(fake_comfy, client, library, max_queue_per_person=2)
    with pytest.raises(QueueFull):
        desk.submit_many([GenerateRequest(f"p{i}", 256, 256, steps=1) for i in range(4)], BOB)
    assert desk.jobs("user:bob") == [] and desk.studio.scheduler.waiting_count == 0
    jobs = desk.submit_many([GenerateRequest(f"p{i}", 256, 256, steps=1) for i in range(3)], BOB)
    assert len({j.ticket.batch for j in jobs}) == 1 and [j.ticket.index for j in jobs] == [0, 1, 2]
    assert all(isinstance(outcome, Finished) for outcome in [await j.outcome() for j in jobs])


async def test_a_late_follower_gets_the_end_and_a_failed_save_still_shows_the_result(
    fake_comfy: FakeComfy, client: ComfyClient, library: Library,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def full_disk(*_: object) -> None:
        raise LibrarySaveError("The result was not saved to the library: the disk is full.")

    monkeypatch.setattr(library, "save", full_disk)
    desk = make_desk(fake_comfy, client, library)
    job = desk.submit(GenerateRequest("a fox", 256, 256, steps=1), ANN)
    await job.outcome()
    late = [e async for e in job.events()]            # after the end: replayed
    finished = next(e for e in late if isinstance(e, Finished))
    assert finished.images and isinstance(late[-1], Saved)
    assert late[-1].items == () and "disk is full" in (late[-1].warning or "")
    assert job.state is JobState.FINISHED

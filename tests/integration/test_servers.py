"""Several ComfyUI servers behind one studio (issue 15), against two fakes over real HTTP and
websockets: jobs spread and say where they ran, each model goes to the server that has it
warm, a mode goes only where it is ready, and a server that goes away mid-run loses no job and
duplicates none (moved once, noted), comes back and takes work again; a server cut off (not
killed) gets the prompt it was left with cancelled when it answers again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
from PIL import Image

from backend.context import StudioContext, build_context
from backend.desk import Job, JobState, Who
from backend.events import Failed, Finished, Moved
from backend.jobs import NotReadyAnywhere
from backend.library import LibraryConfig
from backend.modes.edit import EditRequest
from backend.modes.generate import GenerateRequest
from backend.modes.inpaint import InpaintRequest
from backend.settings import Settings
from tests.fake_comfy import FakeComfy

pytestmark = pytest.mark.timeout(90)

GUARD_S = 30.0


@dataclass
class Room:
    ctx: StudioContext
    a: FakeComfy
    b: FakeComfy


def settings_for(a: FakeComfy, b: FakeComfy, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "comfy_url": f"a={a.url},b={b.url}",
        "poll_interval_s": 0.2,
        "job_timeout_s": 30.0,
        "max_sampling_pixels": 256 * 256,
        "library": LibraryConfig.from_env(),   # the test's data folder
    }
    values.update(overrides)
    return Settings.from_env({}, **values)


@contextlib.asynccontextmanager
async def room(start: bool = True, **overrides: Any) -> AsyncIterator[Room]:
    a, b = FakeComfy().start(), FakeComfy().start()
    ctx = build_context(settings_for(a, b, **overrides), env={})
    try:
        if start:
            await ctx.start()
        else:
            await ctx.library.open()
        yield Room(ctx, a, b)
    finally:
        await ctx.aclose()
        a.close()
        b.close()


async def until(predicate: Callable[[], bool], guard_s: float = GUARD_S) -> None:
    async with asyncio.timeout(guard_s):
        while not predicate():  # noqa: ASYNC110 - polling fakes and the studio
            await asyncio.sleep(0.02)


def generate(seed: int, steps: int = 2) -> GenerateRequest:
    return GenerateRequest(f"lighthouse {seed}", 256, 256, seed=seed, steps=steps)


def edit(seed: int, steps: int = 2) -> EditRequest:
    return EditRequest(Image.new("RGB", (256, 256), (seed % 255, 90, 160)), f"night {seed}",
                       seed=seed, steps=steps)


async def outcomes(jobs: list[Job]) -> list[Finished | Failed]:
    return list(await asyncio.gather(*(job.outcome() for job in jobs)))


async def test_jobs_spread_over_both_servers_and_say_where_they_ran() -> None:
    async with room() as r:
        r.a.set_delays(step=0.05)
        r.b.set_delays(step=0.05)
        people = [Who(f"user:{n}", f"user:{n}", "ui") for n in "pqrs"]
        jobs = [r.ctx.desk.submit(generate(i), people[i % 4]) for i in range(8)]
        ends = await outcomes(jobs)
        assert all(isinstance(e, Finished) for e in ends), ends
        servers = [e.server for e in ends if isinstance(e, Finished)]
        assert set(servers) == {"a", "b"}
        assert [job.view().server for job in jobs] == servers     # the desk knows too
        executed = r.a.counters["prompts_executed"] + r.b.counters["prompts_executed"]
        assert executed == 8                                       # one prompt per job
        snaps = r.ctx.monitor.server_snapshots()
        assert list(snaps) == ["a", "b"] and all(s.server == label for label, s in snaps.items())


async def test_each_model_goes_to_the_server_that_has_it_warm() -> None:
    async with room() as r:
        desk, ann = r.ctx.desk, Who("user:ann", "user:ann", "ui")
        # Warm a with the generation model and b with the edit model.
        warm = [desk.submit(generate(1), ann, save=False)]
        await until(lambda: warm[0].server is not None)
        warm.append(desk.submit(edit(2), ann, save=False))
        first = await outcomes(warm)
        placed = {e.mode: e.server for e in first if isinstance(e, Finished)}
        assert len(set(placed.values())) == 2, first
        # Then a mixed room: each job runs where its model is, none loads a model.
        people = [Who(f"user:{n}", f"user:{n}", "ui") for n in "xyz"]
        jobs = [desk.submit((generate if i % 2 else edit)(10 + i), people[i % 3], save=False)
                for i in range(6)]
        for end in await outcomes(jobs):
            assert isinstance(end, Finished), end
            assert end.server == placed[end.mode] and not end.models_loaded


async def test_a_mode_goes_only_where_it_is_ready_and_is_refused_when_nowhere() -> None:
    async with room() as r:
        r.b.hide_classes("LanPaint_KSampler")                  # b lacks the inpaint pack
        await until(lambda: r.ctx.studio.backends["b"].ready.get("inpaint") is False)
        ann = Who("user:ann", "user:ann", "api")
        image = Image.new("RGB", (256, 256), (120, 80, 40))
        mask = Image.new("L", (256, 256), 0)
        mask.paste(255, (64, 64, 192, 192))
        jobs = [r.ctx.desk.submit(InpaintRequest(image, mask, f"a cat {i}", seed=i, steps=1),
                                  ann, save=False) for i in range(3)]
        ends = await outcomes(jobs)
        assert [e.server for e in ends if isinstance(e, Finished)] == ["a", "a", "a"], ends

        r.a.hide_classes("LanPaint_KSampler")
        r.ctx.monitor._readiness_at = 0.0                     # re-check now, not in 30 s
        await until(lambda: r.ctx.studio.backends["a"].ready.get("inpaint") is False)
        with pytest.raises(NotReadyAnywhere) as refused:
            r.ctx.desk.submit(InpaintRequest(image, mask, "a dog", steps=1), ann)
        assert "not ready on any ComfyUI server" in refused.value.message
        assert "(a: missing node classes: LanPaint_KSampler" in refused.value.message
        assert "127.0.0.1" not in refused.value.message
        # The other modes still go.
        assert isinstance(await r.ctx.desk.submit(generate(3), ann, save=False).outcome(),
                          Finished)


async def test_a_server_killed_mid_run_loses_and_duplicates_nothing_then_comes_back() -> None:
    """The issue's failover test: 2 servers, 20 jobs, one server killed mid-run — 20 results,
    0 lost, 0 duplicated, each moved job noted; then the server comes back and takes work
    again without a studio restart."""
    async with room() as r:
        r.a.set_delays(step=0.05)
        r.b.set_delays(step=0.05)
        desk = r.ctx.desk
        people = [Who(f"user:{n}", f"user:{n}", "api") for n in "pqrst"]
        jobs = [desk.submit(generate(100 + i, steps=3), people[i % 5]) for i in range(20)]
        # Kill a while one of the jobs runs there, after a few results.
        await until(lambda: sum(j.state is JobState.FINISHED for j in jobs) >= 3
                    and any(j.server == "a" and j.state is JobState.RUNNING for j in jobs))
        r.a.stop()
        ends = await outcomes(jobs)
        finished = [e for e in ends if isinstance(e, Finished)]
        assert len(finished) == 20, [e for e in ends if isinstance(e, Failed)]
        assert sorted(e.seed for e in finished) == list(range(100, 120))   # each once
        moved = [e for e in finished if any(n.startswith("Moved from a to b") for n in e.notes)]
        assert moved, "the job running on a when it died was moved"
        for end in moved:
            assert end.server == "b"
            assert "Moved from a to b after a lost connection." in end.notes
        for job in jobs:                                   # one Finished per job, ever
            events = [e async for e in job.events()]
            assert sum(isinstance(e, Finished) for e in events) == 1
            assert sum(isinstance(e, Moved) for e in events) <= 1
        assert all(len(job.view().item_ids) == 1 for job in jobs)    # each saved once
        assert r.ctx.metrics.failovers.labels("a", "b", "unreachable")._value.get() == len(moved)

        # a comes back: it takes work again, no studio restart.
        r.a.start()
        await until(lambda: r.ctx.studio.scheduler.available("a")
                    and r.ctx.monitor.server_snapshots()["a"].online)
        later = [desk.submit(generate(200 + i), people[i % 5], save=False) for i in range(6)]
        again = await outcomes(later)
        assert all(isinstance(e, Finished) for e in again), again
        assert "a" in {e.server for e in again if isinstance(e, Finished)}


class Proxy:
    """A TCP proxy in front of a fake: `cut()` refuses connections and drops the open ones
    (a network cut: the fake keeps running what it has), `mend()` listens again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def mend(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port,
                                                  reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


async def test_a_cut_off_server_gets_its_abandoned_prompt_cancelled_when_it_answers() -> None:
    """Not killed, only unreachable: the job moves to b and finishes there once; when a
    answers again, the prompt it still runs for nobody is interrupted."""
    a, b = FakeComfy().start(), FakeComfy().start()
    proxy = Proxy(a.config.port)
    await proxy.mend()
    settings = replace(settings_for(a, b), comfy_url=f"a={proxy.url},b={b.url}")
    ctx = build_context(settings, env={})
    await ctx.start()
    try:
        a.set_delays(step=0.25)                      # 40 steps: ~10 s on a
        ctx.studio.scheduler.set_external_load("b", 50)   # the first free pick is a
        job = ctx.desk.submit(generate(7, steps=40), Who("user:ann", "user:ann", "ui"),
                              save=False)
        await until(lambda: job.server == "a" and bool(a.queue_ids()[0]))
        [running] = a.queue_ids()[0]
        await proxy.cut()
        b.set_delays(step=0.0)
        end = await job.outcome()
        assert isinstance(end, Finished) and end.server == "b", end
        assert "Moved from a to b after a lost connection." in end.notes
        assert a.queue_ids()[0] == [running]             # a still runs it, for nobody
        assert running in ctx.clients["a"].abandoned_prompt_ids
        await proxy.mend()
        await until(lambda: not a.queue_ids()[0])      # interrupted once a answers again
        assert a.counters["interrupts_applied"] >= 1
        assert not ctx.clients["a"].abandoned_prompt_ids
        events = [e async for e in job.events()]
        assert sum(isinstance(e, Finished) for e in events) == 1
        [moved] = [e for e in events if isinstance(e, Moved)]
        assert (moved.from_server, moved.to_server, moved.reason) == ("a", "b", "unreachable")
    finally:
        await ctx.aclose()
        with contextlib.suppress(Exception):
            await proxy.cut()
        a.close()
        b.close()


async def test_out_of_memory_moves_only_to_a_server_with_more_free_memory() -> None:
    async with room(start=False, oom_retry=True) as r:
        r.a.set_other_tenant(10.0)                     # a has less free memory than b
        await r.ctx.monitor.refresh_now()              # what each server has free
        r.ctx.studio.scheduler.set_external_load("b", 50)   # the first pick is a
        r.a.oom_at("KSampler", times=1)
        events = [e async for e in r.ctx.studio.run(generate(5))]
        end = events[-1]
        assert isinstance(end, Finished) and end.server == "b", end
        assert end.images[0].size == (256, 256)        # the same size: it was the server
        assert "Moved from a to b after running out of memory." in end.notes
        assert [e.reason for e in events if isinstance(e, Moved)] == ["out_of_memory"]

        # Where no server has more free, out-of-memory does not move: it retries smaller.
        r.ctx.studio.backends["a"].vram_free = 5 * 1024**3
        r.ctx.studio.backends["b"].vram_free = 10 * 1024**3
        r.ctx.studio.scheduler.set_external_load("b", 0)
        r.ctx.studio.scheduler.set_external_load("a", 50)
        r.b.oom_at("KSampler", times=1)
        big = GenerateRequest("big", 512, 512, seed=6, steps=1)
        events = [e async for e in r.ctx.studio.run(big)]
        end = events[-1]
        assert isinstance(end, Finished) and end.server == "b", end
        assert not any(isinstance(e, Moved) for e in events)
        assert any(n.startswith("Out of memory at 512×512") for n in end.notes), end.notes


async def test_an_execution_error_is_not_moved() -> None:
    async with room(start=False) as r:
        r.a.fail_at("KSampler")
        r.b.fail_at("KSampler")
        events = [e async for e in r.ctx.studio.run(generate(9))]
        assert isinstance(events[-1], Failed) and events[-1].kind == "execution"
        assert not any(isinstance(e, Moved) for e in events)
        assert r.a.counters["prompts_posted"] + r.b.counters["prompts_posted"] == 1

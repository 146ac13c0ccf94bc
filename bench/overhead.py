"""(a) Per-job overhead of `studio.run` against a bare client, interleaved in one process.

Measured twice: against a fake ComfyUI in its own process (the headline numbers: a real
ComfyUI is another process, so its work does not compete with the studio for this process's
GIL), then against the in-process fake (`FakeComfy` in a thread here), which charges the
studio for GIL waits behind the fake's numpy and PNG work.

The fake computes nothing slow (step/load delays 0) and makes 1024×1024 outputs. Every job,
bare or studio, gets a fresh seed so the fake runs the whole graph each time (a new output
nonce alone would only re-run SaveImage). The bare client submits exactly the graph the studio
submitted (`Finished.workflow`) with that seed and nonce changed. Jobs alternate bare, studio,
bare, studio… after a few warm-up runs of each, so drift (files piling up in the fake's output
folder, CPU frequency, GC) hits both sides alike.
"""

from __future__ import annotations

import itertools
import logging
import statistics
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from backend.context import StudioContext, build_context
from backend.jobs import Failed, Finished
from backend.modes.generate import GenerateRequest
from bench.bare import BareClient, variant_of
from bench.common import Stats, fake_process, standalone, studio_settings

log = logging.getLogger(__name__)

SIZE = 1024
PROMPT = "a banana-yellow scooter on a rainy Lisbon street"


@dataclass(frozen=True)
class OverheadResult:
    setup: str
    jobs: int
    bare: Stats
    studio: Stats
    ratio_median: float          # median over pairs of studio/bare
    added_ms: float              # median over pairs of studio - bare
    added_p90_ms: float
    bare_cpu: Stats              # CPU per job in this process outside the fake's thread
    studio_cpu: Stats

    def lines(self) -> list[str]:
        return [
            f"  {self.setup}: {self.jobs} jobs each, interleaved, 1024×1024, 20 steps,"
            " fake delays 0",
            self.bare.line("bare client"),
            self.studio.line("studio.run"),
            f"  ratio studio/bare: median {self.ratio_median:.3f}x "
            f"(of medians {self.studio.median / self.bare.median:.3f}x)",
            f"  added per job: median {self.added_ms:.1f} ms, p90 {self.added_p90_ms:.1f} ms",
            f"  client-side CPU per job (all threads but the fake's): bare "
            f"{self.bare_cpu.median:.1f} ms, studio {self.studio_cpu.median:.1f} ms (median)",
        ]


def generate_request(seed: int, size: int = SIZE, prompt: str = PROMPT) -> GenerateRequest:
    return GenerateRequest(prompt=prompt, width=size, height=size, seed=seed)


async def studio_job(ctx: StudioContext, request: Any) -> Finished:
    """Run one request to its Finished event (raise on Failed)."""
    async with aclosing(ctx.studio.run(request)) as events:
        async for event in events:
            if isinstance(event, Finished):
                return event
            if isinstance(event, Failed):
                raise RuntimeError(f"studio job failed ({event.kind}): {event.message}")
    raise RuntimeError("studio.run ended without Finished")


@asynccontextmanager
async def studio_context(comfy_url: str, **overrides: Any) -> AsyncIterator[StudioContext]:
    ctx = build_context(studio_settings(comfy_url, **overrides))
    try:
        yield ctx
    finally:
        await ctx.aclose()


def client_cpu_clock() -> Callable[[], float]:
    """CPU seconds of this process minus the fake's thread: the client's side of a job (event
    loop and worker threads). Less disturbed by other load on the machine than wall time."""
    fake = next((t for t in threading.enumerate() if t.name == "fake-comfy"), None)
    if fake is None or fake.ident is None:
        return time.process_time
    fake_clock = time.pthread_getcpuclockid(fake.ident)
    return lambda: time.process_time() - time.clock_gettime(fake_clock)


async def timed(job: Callable[[], Any], cpu: Callable[[], float]) -> tuple[float, float]:
    """(wall ms, client CPU ms) of one job."""
    start, start_cpu = time.perf_counter(), cpu()
    await job()
    return (time.perf_counter() - start) * 1000.0, (cpu() - start_cpu) * 1000.0


def paired(bare_ms: list[float], studio_ms: list[float]) -> tuple[float, float, float]:
    """Median ratio, median and p90 of the per-pair difference (pairs ran back to back)."""
    ratios = [s / b for b, s in zip(bare_ms, studio_ms, strict=True)]
    diffs = sorted(s - b for b, s in zip(bare_ms, studio_ms, strict=True))
    return statistics.median(ratios), statistics.median(diffs), Stats.of(diffs).p90


async def measure(comfy_url: str, setup: str, jobs: int = 60, warmup: int = 5
                  ) -> OverheadResult:
    seeds = itertools.count(1_000)
    async with studio_context(comfy_url) as ctx, BareClient(comfy_url) as bare:
        workflow = (await studio_job(ctx, generate_request(next(seeds)))).workflow
        cpu = client_cpu_clock()
        bare_ms: list[float] = []
        studio_ms: list[float] = []
        bare_cpu: list[float] = []
        studio_cpu: list[float] = []
        for i in range(warmup + jobs):
            graph = variant_of(workflow, next(seeds))
            request = generate_request(next(seeds))
            b, b_cpu = await timed(lambda g=graph: bare.run(g), cpu)
            s, s_cpu = await timed(lambda r=request: studio_job(ctx, r), cpu)
            if i >= warmup:
                bare_ms.append(b)
                studio_ms.append(s)
                bare_cpu.append(b_cpu)
                studio_cpu.append(s_cpu)
    ratio, added, added_p90 = paired(bare_ms, studio_ms)
    return OverheadResult(setup, jobs, Stats.of(bare_ms), Stats.of(studio_ms), ratio, added, added_p90,
                          Stats.of(bare_cpu), Stats.of(studio_cpu))


@dataclass(frozen=True)
class OverheadRun:
    separate: OverheadResult     # the fake in its own process: the summary's numbers
    in_process: OverheadResult

    @property
    def ratio_median(self) -> float:
        return self.separate.ratio_median

    @property
    def added_ms(self) -> float:
        return self.separate.added_ms


async def run(fake: Any, jobs: int = 60, in_process_jobs: int = 24) -> OverheadRun:
    async with fake_process() as url:
        separate = await measure(url, "fake in its own process", jobs=jobs)
    print("\n".join(separate.lines()), flush=True)
    fake.set_delays(step=0.0, load=0.0, node=0.0)
    in_process = await measure(fake.url, "fake in this process (shares the GIL)",
                               jobs=in_process_jobs)
    print("\n".join(in_process.lines()), flush=True)
    return OverheadRun(separate, in_process)


if __name__ == "__main__":
    standalone(run)

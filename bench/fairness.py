"""(k) Per-person fairness with a batch (issue 14): person A queues a batch of 4, person B a
single job a moment later (once A's first job runs). B's job must wait for at most one of
A's jobs (the one already running), not all four: the scheduler takes people in turns.

`jobs_ahead` counts A's jobs that started after B submitted and before B's job started, plus
the one running when B submitted: 1 is the fair answer, 4 would be first-come-first-served.
Through the real desk (`build_context`), the fake ComfyUI on loopback. `python -m
bench.fairness`.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass

from backend.context import build_context
from backend.desk import Job, Who
from backend.events import Failed, Finished, Started
from backend.library import LibraryConfig
from backend.modes.generate import GenerateRequest
from bench.common import machine_lines, quiet_logs, studio_settings
from tests.fake_comfy import FakeComfy

BATCH = 4
STEP_DELAY_S = 0.05
STEPS = 8
SIZE = 256


@dataclass(frozen=True)
class FairnessResult:
    jobs_ahead: int          # A's jobs B waited for (1 is fair; BATCH is first-come-first-served)
    b_wait_s: float          # from B's submit to B's start
    a_job_s: float           # one of A's jobs, start to finish (median)
    order: tuple[str, ...]   # who started, in order

    def lines(self) -> list[str]:
        return [
            f"  start order: {' '.join(self.order)}",
            f"  B waited for {self.jobs_ahead} of A's {BATCH} jobs "
            f"({self.b_wait_s:.2f} s; one of A's jobs takes {self.a_job_s:.2f} s)",
        ]


def request(seed: int) -> GenerateRequest:
    return GenerateRequest(prompt="a lighthouse at dusk", width=SIZE, height=SIZE, seed=seed,
                           steps=STEPS)


async def follow(job: Job, name: str, log: list[tuple[float, str, str]],
                 started: asyncio.Event) -> None:
    async for event in job.events():
        if isinstance(event, Started):
            log.append((time.monotonic(), "start", name))
            started.set()
        elif isinstance(event, Finished):
            log.append((time.monotonic(), "end", name))
        elif isinstance(event, Failed):
            raise RuntimeError(f"{name} failed: {event.message}")


async def measure(comfy_url: str) -> FairnessResult:
    with tempfile.TemporaryDirectory(prefix="bench-fairness-") as folder:
        library = LibraryConfig.from_env({"STUDIO_DATA_DIR": folder})
        ctx = build_context(studio_settings(comfy_url, library=library), env={})
        await ctx.start()
        try:
            log: list[tuple[float, str, str]] = []
            ann = Who(person="user:ann", owner="user:ann", surface="ui")
            bob = Who(person="user:bob", owner="user:bob", surface="ui")
            batch = ctx.desk.submit_many([request(i) for i in range(BATCH)], ann)
            a_started = asyncio.Event()
            follows = [asyncio.create_task(follow(j, f"A{i + 1}", log, a_started))
                       for i, j in enumerate(batch)]
            await a_started.wait()
            submitted = time.monotonic()
            single = ctx.desk.submit(request(99), bob)
            follows.append(asyncio.create_task(follow(single, "B", log, asyncio.Event())))
            await asyncio.gather(*follows)
        finally:
            await ctx.aclose()
    starts = [(t, name) for t, kind, name in log if kind == "start"]
    b_start = next(t for t, name in starts if name == "B")
    ahead = sum(1 for t, name in starts if name != "B" and t < b_start
                and _end(log, name) > submitted)
    spans = sorted(_end(log, n) - t for t, n in starts if n != "B")
    return FairnessResult(ahead, b_start - submitted, spans[len(spans) // 2],
                          tuple(name for _, name in sorted(starts)))


def _end(log: list[tuple[float, str, str]], name: str) -> float:
    return next(t for t, kind, n in log if kind == "end" and n == name)


async def run(fake: FakeComfy) -> FairnessResult:
    fake.set_delays(step=STEP_DELAY_S, load=0.0)
    result = await measure(fake.url)
    print("\n".join(result.lines()), flush=True)
    return result


def main() -> int:
    quiet_logs()
    print("\n".join(machine_lines()))
    fake = FakeComfy().start()
    try:
        asyncio.run(run(fake))
    finally:
        fake.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

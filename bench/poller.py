"""(d) The sidebar poller: requests per second reaching ComfyUI with 1 and with 50 open pages.

A page is what each browser tab's sidebar Timer does: call `monitor.snapshot()` every 2 s from
a worker thread (the handler is sync, so Gradio runs it in a thread). The first page opens at
once, the others at random offsets within the first tick. Each scenario gets a fresh studio
context whose monitor is started as the app's lifespan starts it; the fake's per-route
counters are read before and after. The window includes the first poll and its readiness
check (/object_info, /models/…), the same in both scenarios.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench.common import standalone
from bench.overhead import studio_context

TICK_S = 2.0            # ui/sidebar.py's timer
WINDOW_S = 10.0


@dataclass(frozen=True)
class PollerScenario:
    pages: int
    seconds: float
    snapshots: int              # snapshot() calls made by all pages
    polls: int                  # monitor.polls
    requests: dict[str, int]    # per route, e.g. {"GET /queue": 5}

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    @property
    def per_second(self) -> float:
        return self.total / self.seconds


@dataclass(frozen=True)
class PollerResult:
    one: PollerScenario
    many: PollerScenario

    @property
    def ratio(self) -> float:
        return self.many.per_second / self.one.per_second if self.one.per_second else float("nan")

    def lines(self) -> list[str]:
        out = []
        for s in (self.one, self.many):
            routes = ", ".join(f"{k} {v}" for k, v in sorted(s.requests.items()))
            out.append(
                f"  {s.pages:>2} page(s): {s.per_second:5.2f} requests/s to ComfyUI over "
                f"{s.seconds:.1f} s ({s.total} requests, {s.polls} polls, "
                f"{s.snapshots} snapshot() calls) — {routes}"
            )
        out.append(f"  ratio 50 pages / 1 page: {self.ratio:.2f} (target ~1.0)")
        return out


async def scenario(fake: Any, pages: int, seconds: float = WINDOW_S) -> PollerScenario:
    rng = random.Random(pages)
    calls = 0

    async def page(offset: float) -> None:
        nonlocal calls
        await asyncio.sleep(offset)
        while True:
            await asyncio.to_thread(ctx.monitor.snapshot)
            calls += 1
            await asyncio.sleep(TICK_S)

    async with studio_context(fake.url) as ctx:
        before = Counter(fake.counters["requests"])
        start = time.perf_counter()
        ctx.monitor.start()            # what the API router's lifespan does in the app
        # The first page opens at once (same start in both scenarios); the rest at random.
        offsets = [0.0] + [rng.uniform(0.0, TICK_S) for _ in range(pages - 1)]
        tasks = [asyncio.create_task(page(offset)) for offset in offsets]
        await asyncio.sleep(seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        elapsed = time.perf_counter() - start
        polls = ctx.monitor.polls
        await ctx.monitor.aclose()
        after = Counter(fake.counters["requests"])
    return PollerScenario(pages, elapsed, calls, polls, dict(after - before))


async def run(fake: Any, seconds: float = WINDOW_S) -> PollerResult:
    one = await scenario(fake, 1, seconds)
    many = await scenario(fake, 50, seconds)
    result = PollerResult(one, many)
    print("\n".join(result.lines()), flush=True)
    return result


if __name__ == "__main__":
    standalone(run)

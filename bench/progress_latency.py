"""(c) Latency from the fake emitting a `progress` message to the studio's consumer receiving
the matching Progress event — one process, one clock (time.perf_counter).

The fake is instrumented from here, not edited: its websocket Hub's `emit` is wrapped for the
duration of the measurement to stamp each `progress` message (prompt_id, step) as it is queued
for sending. The consumer stamps each Progress event that carries a sampler step. The span
covers the fake's publisher, the socket, the studio's SocketHub routing, client.execute(),
the progress tracker and the event stream — everything between ComfyUI and the UI code.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass, replace
from typing import Any

from backend.jobs import Failed, Progress, Queued
from bench.common import Stats, standalone
from bench.overhead import generate_request, studio_context
from tests.fake_comfy.ws import Hub

STEP_DELAY_S = 0.020
STEPS = 50


@dataclass(frozen=True)
class LatencyResult:
    jobs: int
    steps: int
    step_delay_s: float
    latency: Stats
    matched: int
    emitted: int

    def lines(self) -> list[str]:
        return [
            f"  {self.jobs} jobs × {self.steps} steps, fake step delay "
            f"{self.step_delay_s * 1000:.0f} ms, 1024×1024 (previews on)",
            self.latency.line("emit → Progress event"),
            f"  matched {self.matched} of {self.emitted} progress messages",
        ]


@contextmanager
def stamped_progress() -> Iterator[dict[tuple[str, int], float]]:
    """While active, {(prompt_id, step): perf_counter at the fake's emit} for every progress."""
    stamps: dict[tuple[str, int], float] = {}
    original = Hub.emit

    def emit(self: Hub, event: str, data: Any, sid: str | None = None) -> None:
        if event == "progress" and isinstance(data, dict):
            stamps[(str(data.get("prompt_id")), int(data.get("value", -1)))] = time.perf_counter()
        original(self, event, data, sid)

    Hub.emit = emit  # type: ignore[method-assign]
    try:
        yield stamps
    finally:
        Hub.emit = original  # type: ignore[method-assign]


async def measure(comfy_url: str, jobs: int = 3, steps: int = STEPS) -> tuple[list[float], int]:
    seeds = itertools.count(70_000)
    latencies: list[float] = []
    with stamped_progress() as stamps:
        async with studio_context(comfy_url) as ctx:
            for _ in range(jobs):
                request = replace(generate_request(next(seeds)), steps=steps)
                prompt_id = ""
                async with aclosing(ctx.studio.run(request)) as events:
                    async for event in events:
                        now = time.perf_counter()
                        if isinstance(event, Queued) and event.prompt_id:
                            prompt_id = event.prompt_id   # "" while waiting in the studio
                        elif isinstance(event, Progress) and event.step is not None:
                            sent = stamps.get((prompt_id, event.step))
                            if sent is not None:
                                latencies.append((now - sent) * 1000.0)
                        elif isinstance(event, Failed):
                            raise RuntimeError(f"job failed: {event.message}")
        emitted = len(stamps)
    return latencies, emitted


async def run(fake: Any, jobs: int = 3) -> LatencyResult:
    fake.set_delays(step=STEP_DELAY_S, load=0.0, node=0.0)
    try:
        latencies, emitted = await measure(fake.url, jobs=jobs)
    finally:
        fake.set_delays(step=0.0)
    result = LatencyResult(jobs, STEPS, STEP_DELAY_S, Stats.of(latencies), len(latencies),
                           emitted)
    print("\n".join(result.lines()), flush=True)
    return result


if __name__ == "__main__":
    standalone(run)

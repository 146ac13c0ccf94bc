"""(d) Scheduling: model swaps, total time and worst wait under "fifo" and "group".

Four concurrent sessions each run three jobs one after another (a person waits for a result
before asking again), alternating generate and edit, so the studio queue holds jobs of both
models at once, like several people sharing one GPU. The fake loads a diffusion model in
LOAD_DELAY_S (the real server's swap is 5-10 s) and keeps at most one resident, so every
generate↔edit change costs a swap. Each policy runs on a fresh fake (nothing resident).

"group, depth 2" is the variant that keeps one of our prompts pending in ComfyUI: it shows
what the GPU's idle hand-off between jobs costs with depth 1 (the default) and what deciding
the next job one job earlier costs in swaps.

`main()` prints and returns the numbers; `python -m bench.scheduling`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import statistics
import time
from contextlib import aclosing
from dataclasses import asdict, dataclass, replace
from typing import Any

from PIL import Image

from backend.comfy import ComfyClient
from backend.jobs import Failed, Finished, Started, Studio
from backend.modes.edit import EditRequest
from backend.modes.generate import GenerateRequest
from backend.scheduler import Scheduler, SchedulerConfig
from backend.workflows import TemplateLibrary
from bench.common import machine_lines, studio_settings
from tests.fake_comfy import FakeComfy

log = logging.getLogger(__name__)

SESSIONS = 4
JOBS_PER_SESSION = 3
LOAD_DELAY_S = 1.0
STEP_DELAY_S = 0.03
STEPS = 8
SIZE = 384
VARIANTS: tuple[tuple[str, str, int], ...] = (
    ("fifo", "fifo", 1),
    ("group", "group", 1),
    ("group, depth 2", "group", 2),
)


@dataclass(frozen=True)
class PolicyResult:
    policy: str
    depth: int
    jobs: int
    model_swaps: int
    model_loads: int
    total_s: float
    worst_wait_s: float      # submit → Started, the longest of any job
    mean_wait_s: float
    gpu_idle_s: float        # sum of the gaps between one prompt's end and the next's start
    median_gap_ms: float     # the typical hand-off (the fake's timestamps are whole ms)
    max_skips_seen: int      # later jobs that started before a job, the most any job saw

    def line(self, label: str) -> str:
        return (
            f"  {label:<15} swaps={self.model_swaps:<3} loads={self.model_loads:<3} "
            f"total={self.total_s:6.2f} s  worst wait={self.worst_wait_s:6.2f} s  "
            f"mean wait={self.mean_wait_s:5.2f} s  gpu idle={self.gpu_idle_s * 1000:4.0f} ms "
            f"(median gap {self.median_gap_ms:3.0f} ms)  "
            f"passed over ≤{self.max_skips_seen}"
        )


def session_requests(session: int) -> list[Any]:
    """Even sessions start with generate, odd ones with edit; each then alternates."""
    jobs: list[Any] = []
    for k in range(JOBS_PER_SESSION):
        seed = 1000 * session + k
        if (session + k) % 2 == 0:
            jobs.append(GenerateRequest(f"session {session} job {k}", SIZE, SIZE, seed=seed,
                                        steps=STEPS))
        else:
            source = Image.new("RGB", (SIZE + 16 * session, SIZE), (60 * session, 120, 30 * k))
            jobs.append(EditRequest(source, f"session {session} edit {k}", seed=seed,
                                    steps=STEPS))
    return jobs


async def measure(fake: FakeComfy, policy: str, depth: int = 1) -> PolicyResult:
    """Run the workload once through `studio.run` on `fake` (fresh: nothing resident)."""
    settings = studio_settings(fake.url, scheduling=policy, max_sampling_pixels=SIZE * SIZE)
    client = ComfyClient(fake.url)
    studio = Studio(client, settings, TemplateLibrary(settings.workflows_dir))
    # depth is not a setting (see backend/scheduler.py): swap in the variant's scheduler
    studio.scheduler = Scheduler(replace(SchedulerConfig.from_settings(settings), depth=depth))
    arrivals: list[float] = []
    starts: dict[int, float] = {}
    prompt_ids: list[str] = []

    async def job(request: Any) -> None:
        index = len(arrivals)
        arrivals.append(time.monotonic())
        async with aclosing(studio.run(request)) as events:
            async for event in events:
                if isinstance(event, Started):
                    starts[index] = time.monotonic()
                elif isinstance(event, Finished):
                    prompt_ids.append(event.prompt_id or "")
                elif isinstance(event, Failed):
                    raise RuntimeError(f"{policy}: a job failed ({event.kind}): {event.message}")

    async def session(number: int) -> None:
        for request in session_requests(number):
            await job(request)

    fake.reset_counters()
    try:
        began = time.monotonic()
        await asyncio.gather(*(session(n) for n in range(SESSIONS)))
        total = time.monotonic() - began
    finally:
        await client.aclose()
    counters = fake.counters
    waits = [starts[i] - arrivals[i] for i in range(len(arrivals))]
    gaps = _gaps_ms(fake, prompt_ids)
    order = sorted(starts, key=starts.__getitem__)
    passed = [sum(1 for j in order[: order.index(i)] if arrivals[j] > arrivals[i])
              for i in order]
    return PolicyResult(
        policy=policy, depth=depth, jobs=len(arrivals), model_swaps=counters["model_swaps"],
        model_loads=sum(n for name, n in counters["loads_by_model"].items()
                        if name in _diffusion_models(settings)),
        total_s=total, worst_wait_s=max(waits), mean_wait_s=sum(waits) / len(waits),
        gpu_idle_s=sum(gaps) / 1000.0, median_gap_ms=statistics.median(gaps),
        max_skips_seen=max(passed),
    )


def _diffusion_models(settings: Any) -> set[str]:
    models = settings.models
    return {models.generate_unet, models.generate_turbo_unet, models.edit_unet}


def _gaps_ms(fake: FakeComfy, prompt_ids: list[str]) -> list[int]:
    """From the fake's history timestamps (ms): each stretch between prompts, none running."""
    spans = []
    for prompt_id in prompt_ids:
        entry = fake.history(prompt_id).get(prompt_id, {})
        stamps = {event: data.get("timestamp") for event, data in
                  entry.get("status", {}).get("messages", [])}
        if stamps.get("execution_start") and stamps.get("execution_success"):
            spans.append((stamps["execution_start"], stamps["execution_success"]))
    spans.sort()
    return [max(0, nxt[0] - cur[1]) for cur, nxt in itertools.pairwise(spans)]


async def run_all() -> dict[str, Any]:
    results: dict[str, PolicyResult] = {}
    for label, policy, depth in VARIANTS:
        fake = FakeComfy(load_delay=LOAD_DELAY_S, step_delay=STEP_DELAY_S).start()
        try:
            results[label] = await measure(fake, policy, depth)
        finally:
            fake.close()
    return {label: asdict(result) for label, result in results.items()}


def main() -> dict[str, Any]:
    """Print and return {variant: numbers} (seconds; swaps and loads are counts)."""
    numbers = asyncio.run(run_all())
    jobs = SESSIONS * JOBS_PER_SESSION
    print(f"Scheduling: {jobs} jobs (generate/edit alternating) from {SESSIONS} sessions, "
          f"model load {LOAD_DELAY_S} s, {STEPS} steps × {STEP_DELAY_S} s, fake ComfyUI")
    for line in machine_lines():
        print(line)
    for label, values in numbers.items():
        print(PolicyResult(**values).line(label))
    fifo, group = numbers["fifo"], numbers["group"]
    print(f"  group vs fifo: swaps {group['model_swaps']} vs {fifo['model_swaps']}, total "
          f"{group['total_s'] / fifo['total_s']:.2f}x, worst wait "
          f"{group['worst_wait_s'] / fifo['worst_wait_s']:.2f}x")
    return numbers


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()

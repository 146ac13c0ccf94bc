"""(h) The scheduler's own CPU cost under a burst: joins and leaves, no ComfyUI.

A burst of N jobs from many people joins the studio's line (caps raised so none is refused),
one server releases them one by one, and a random third of the waiting ones leave early
(cancelled). Work per join/leave must not grow with the queue: the CPU time for 10,000 should
be well under a second, and 20,000 should cost about twice 10,000 (not four times).

`python -m bench.scheduler_ops`.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from backend.scheduler import Scheduler, SchedulerConfig, Turn

GROUPS = ("gen", "edit", None)


@dataclass(frozen=True)
class BurstResult:
    jobs: int
    people: int
    cpu_s: float

    def line(self) -> str:
        per = self.cpu_s / self.jobs * 1e6
        return f"  {self.jobs:>6} joins+leaves, {self.people} people: {self.cpu_s:.3f} s CPU ({per:.1f} µs/job)"


def burst(jobs: int, people: int = 50, seed: int = 1) -> BurstResult:
    rng = random.Random(seed)
    config = SchedulerConfig(max_queue=jobs + 1, max_per_owner=jobs + 1, position_refresh_s=0)
    scheduler = Scheduler(config)
    started = time.process_time()
    turns: list[Turn] = [
        scheduler.enter(rng.choice(GROUPS), owner=f"p{rng.randrange(people)}") for _ in range(jobs)
    ]
    for turn in rng.sample(turns, jobs // 3):     # cancelled while waiting (or running)
        turn.leave()
    while scheduler.in_flight:                      # the server works through the rest
        scheduler.running()[0].leave()
    cpu = time.process_time() - started
    assert scheduler.waiting_count == 0 and scheduler.in_flight == 0
    return BurstResult(jobs, people, cpu)


def main() -> list[BurstResult]:
    print("scheduler: CPU per burst of joins and leaves (one server, group policy)")
    results = [burst(n, people) for people in (10, 50) for n in (1_000, 10_000, 20_000)]
    for result in results:
        print(result.line())
    ratio = results[5].cpu_s / results[4].cpu_s
    print(f"  20k/10k CPU ratio {ratio:.2f} (linear ≈ 2, quadratic ≈ 4)")
    return results


if __name__ == "__main__":
    main()

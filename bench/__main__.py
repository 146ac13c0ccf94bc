"""`python -m bench` (`make bench`): every measurement against the fake ComfyUI on loopback,
the clients and the studio in this one process (the fake in a thread here, or in its own
process where a section says so), each section printed as it finishes; the last line is:

    overhead_ratio=R added_ms=M poller_ratio_50_to_1=P lost=L mixed=X healthz_p99_ms=H
    chat_added_ms=C servers_scaling_2=S2 servers_scaling_4=S4 affinity_fewer_swaps=F
    batch_jobs_ahead=B

`bench/scheduling.py` (mode-aware scheduling, owned by its own engineer) runs too when present:
its `run(fake)` or `main()` (async, or sync in a worker thread) prints its own numbers. A
section that fails prints its error and the others still run; its summary values are `nan`.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import math
import os
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from bench import (  # noqa: E402
    burst,
    chat_overhead,
    fairness,
    memory,
    overhead,
    poller,
    progress_latency,
    servers,
    sessions,
    surfaces,
)
from bench.common import load_average, machine_lines, quiet_logs  # noqa: E402
from tests.fake_comfy import FakeComfy  # noqa: E402

Section = Callable[[FakeComfy], Awaitable[Any]]


async def scheduling_section(fake: FakeComfy) -> Any:
    try:
        module = importlib.import_module("bench.scheduling")
    except ModuleNotFoundError as exc:
        if exc.name != "bench.scheduling":
            raise
        print("  (bench/scheduling.py not present: skipped)")
        return None
    run = getattr(module, "run", None) or getattr(module, "main", None)
    if run is None:
        print("  (bench/scheduling.py has neither run(fake) nor main(): skipped)")
        return None
    args = (fake,) if inspect.signature(run).parameters else ()
    if inspect.iscoroutinefunction(run):
        result = await run(*args)
    else:
        # A sync entry point may call asyncio.run itself: give it a thread (and its own loop).
        result = await asyncio.to_thread(run, *args)
    lines = getattr(result, "lines", None)
    if callable(lines):
        print("\n".join(lines()), flush=True)
    return result


SECTIONS: list[tuple[str, str, Section]] = [
    ("overhead", "(a) per-job overhead: studio.run vs a bare client", overhead.run),
    ("surfaces", "(b) the same through the Gradio UI and /v1/images/generations",
     surfaces.run),
    ("progress", "(c) progress latency: fake emit → Progress event", progress_latency.run),
    ("poller", "(d) sidebar poller: ComfyUI requests/s, 1 vs 50 open pages", poller.run),
    ("sessions", "(e) 16 concurrent sessions through one studio", sessions.run),
    ("scheduling", "(f) mode-aware scheduling (bench/scheduling.py)", scheduling_section),
    ("burst", "(g) a burst: 1,500 requests at 500/s to /v1/images/generations", burst.run),
    ("chat", "(h) chat's added time over /v1/images/generations", chat_overhead.run),
    ("memory", "(i) peak RSS: concurrent 40 MP inpaint / multi-ref jobs (bench/memory.py)",
     memory.run),
    ("servers", "(j) several ComfyUI servers: throughput 1/2/4, swaps affinity vs least-loaded",
     servers.run),
    ("fairness", "(k) a batch of 4 and another person's single job: jobs it waits for",
     fairness.run),
]


async def run_all(fake: FakeComfy) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for key, title, section in SECTIONS:
        print(f"\n== {title}", flush=True)
        started = time.monotonic()
        try:
            results[key] = await section(fake)
        except Exception:
            print("  FAILED:\n" + traceback.format_exc(), flush=True)
            results[key] = None
        finally:
            fake.set_delays(step=0.0, load=0.0, node=0.0)
        print(f"  ({time.monotonic() - started:.1f} s, load average {load_average()})",
              flush=True)
    return results


def summary(results: dict[str, Any]) -> str:
    nan = math.nan
    over = results.get("overhead")
    poll = results.get("poller")
    sess = results.get("sessions")
    ratio = over.ratio_median if over else nan
    added = over.added_ms if over else nan
    poll_ratio = poll.ratio if poll else nan
    lost = sess.lost if sess else nan
    mixed = sess.mixed if sess else nan
    burst_result = results.get("burst")
    chat = results.get("chat")
    healthz = burst_result.healthz_p99_ms if burst_result else nan
    chat_added = chat.added_ms if chat else nan
    several = results.get("servers")
    scaling_2 = several.scaling_2 if several else nan
    scaling_4 = several.scaling_4 if several else nan
    fewer = several.fewer_swaps if several else nan
    fair = results.get("fairness")
    ahead = fair.jobs_ahead if fair else nan
    return (f"overhead_ratio={ratio:.3f} added_ms={added:.1f} "
            f"poller_ratio_50_to_1={poll_ratio:.2f} lost={lost} mixed={mixed} "
            f"healthz_p99_ms={healthz:.1f} chat_added_ms={chat_added:.1f} "
            f"servers_scaling_2={scaling_2:.2f} servers_scaling_4={scaling_4:.2f} "
            f"affinity_fewer_swaps={fewer:.2f} batch_jobs_ahead={ahead}")


def main() -> int:
    quiet_logs()
    started = time.monotonic()
    print("Banana Studio benchmarks (fake ComfyUI on loopback)")
    print("\n".join(machine_lines()))
    print(f"  load average at start: {load_average()}")
    fake = FakeComfy().start()
    try:
        results = asyncio.run(run_all(fake))
    finally:
        fake.close()
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    print(summary(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

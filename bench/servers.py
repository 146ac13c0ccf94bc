"""(j) Several ComfyUI servers behind one studio (issue 15): throughput with 1, 2 and 4 servers,
and model swaps under routing "affinity" vs "least-loaded".

Each server is a fake ComfyUI in its own process (as real servers are: they share no GIL
with the studio) that sleeps STEP_DELAY_S per sampler step and LOAD_DELAY_S per model it
loads, keeping one diffusion model resident (so generate↔edit costs a swap there, as on a
GPU), without previews (the real server's default). The sleeps dominate a job, as the GPU
does on a real server: the 2-core machine's CPU is not what is measured.
The studio is the real one (`build_context`), in this process.

Throughput: the same 60-job mixed workload (generate and edit alternating, six people,
all handed in at once) on 1, 2 and 4 servers, each warmed by one tiny job first (a studio
that has been up a while: the cold start, paid once per server, is not throughput);
scaling = jobs/s over the one-server jobs/s (the target is ≥ 0.9 × the number of servers).

Swaps: 2 servers, a mixed workload from several people who each keep two jobs in flight
(asking again as each lands), under each routing on fresh servers; swaps are the fakes'
own count (a diffusion model replacing another). The fairness bounds are the scheduler's
(STUDIO_SCHEDULING_MAX_SKIPS = 3 passes, STUDIO_SCHEDULING_MAX_WAIT_S): the worst skips and
the worst wait in the studio's line are printed next to them.

`python -m bench.servers`; `run(fake)` for `python -m bench` (the shared fake is not used).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from PIL import Image

from backend.context import build_context
from backend.events import Failed, Finished
from backend.jobs import Studio
from backend.library import LibraryConfig
from backend.modes.edit import EditRequest
from backend.modes.generate import GenerateRequest
from backend.requests import RequestBase
from bench.common import ROOT, Stats, free_port, machine_lines, quiet_logs, studio_settings

STEP_DELAY_S = 0.25
STEPS = 4
LOAD_DELAY_S = 0.4
JOBS = 60
PEOPLE = 6
SWAP_PEOPLE = 4
SWAP_JOBS_EACH = 10
IN_FLIGHT_EACH = 2
SIZE = 256
SERVER_COUNTS = (1, 2, 4)


@dataclass(frozen=True)
class Room:
    """One run: what it cost and how fair it was."""

    servers: int
    routing: str
    jobs: int
    failed: int
    wall_s: float
    swaps: int
    loads: int
    worst_wait_s: float
    worst_skips: int
    per_server: dict[str, int]

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.wall_s if self.wall_s > 0 else float("nan")


@dataclass(frozen=True)
class ServersBench:
    throughput: tuple[Room, ...]
    affinity: Room
    least_loaded: Room
    max_skips: int
    max_wait_s: float

    def scaling(self, room: Room) -> float:
        return room.jobs_per_s / self.throughput[0].jobs_per_s

    @property
    def scaling_2(self) -> float:
        return self.scaling(self.throughput[1]) if len(self.throughput) > 1 else float("nan")

    @property
    def scaling_4(self) -> float:
        return self.scaling(self.throughput[2]) if len(self.throughput) > 2 else float("nan")

    @property
    def fewer_swaps(self) -> float:
        """How many fewer swaps affinity makes than least-loaded (0.4 = 40% fewer)."""
        if self.least_loaded.swaps == 0:
            return float("nan")
        return 1.0 - self.affinity.swaps / self.least_loaded.swaps

    def lines(self) -> list[str]:
        out = [f"  fakes: {STEP_DELAY_S * 1000:.0f} ms/step × {STEPS} steps, "
               f"{LOAD_DELAY_S:.1f} s per model load, each in its own process"]
        for room in self.throughput:
            out.append(
                f"  {room.servers} server{'s' if room.servers > 1 else ' '}: {room.jobs} jobs "
                f"in {room.wall_s:5.1f} s = {room.jobs_per_s:5.2f} jobs/s  scaling "
                f"{self.scaling(room):4.2f}× (target ≥ {0.9 * room.servers:.1f}×)  swaps "
                f"{room.swaps}  per server {room.per_server}  failed {room.failed}"
            )
        for room in (self.affinity, self.least_loaded):
            out.append(
                f"  2 servers, {room.routing:<12}: {room.jobs} jobs, {room.swaps:3d} swaps "
                f"({room.loads} loads), {room.wall_s:5.1f} s, worst wait {room.worst_wait_s:5.1f} "
                f"s (bound {self.max_wait_s:.0f} s), worst skips {room.worst_skips} (bound "
                f"{self.max_skips})"
            )
        out.append(f"  affinity makes {self.fewer_swaps:.0%} fewer swaps than least-loaded "
                   "(target ≥ 40%)")
        return out


@contextlib.asynccontextmanager
async def fake_servers(count: int, step_delay: float = STEP_DELAY_S,
                       load_delay: float = LOAD_DELAY_S) -> AsyncIterator[list[str]]:
    """`count` fake ComfyUI processes with these delays; yields their URLs."""
    procs: list[asyncio.subprocess.Process] = []
    urls: list[str] = []
    try:
        for _ in range(count):
            port = free_port()
            procs.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.fake_comfy", "--host", "127.0.0.1",
                "--port", str(port), "--step-delay", str(step_delay),
                "--load-delay", str(load_delay), "--preview-method", "none",
                "--log-level", "WARNING",
                cwd=ROOT, stdout=asyncio.subprocess.DEVNULL,
            ))
            urls.append(f"http://127.0.0.1:{port}")
        async with httpx.AsyncClient(timeout=2.0) as http:
            for url, proc in zip(urls, procs, strict=True):
                deadline = time.monotonic() + 30
                while True:
                    with contextlib.suppress(httpx.TransportError):
                        if (await http.get(url + "/system_stats")).status_code == 200:
                            break
                    if proc.returncode is not None or time.monotonic() > deadline:
                        raise RuntimeError("a fake ComfyUI process did not start")
                    await asyncio.sleep(0.1)
        yield urls
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
        for proc in procs:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(10):
                    await proc.wait()


async def fake_counters(urls: list[str]) -> dict[str, int]:
    total = {"model_swaps": 0, "model_loads": 0}
    async with httpx.AsyncClient(timeout=5.0) as http:
        for url in urls:
            values = (await http.get(url + "/__fake__/counters")).json()
            for key in total:
                total[key] += int(values.get(key, 0))
    return total


def request(kind: str, seed: int) -> RequestBase:
    if kind == "generate":
        return GenerateRequest(f"lighthouse {seed}", SIZE, SIZE, seed=seed, steps=STEPS)
    picture = Image.new("RGB", (SIZE, SIZE), (seed % 250, 90, 160))
    return EditRequest(picture, f"at night {seed}", seed=seed, steps=STEPS)


@dataclass
class _Tally:
    finished: int = 0
    failed: int = 0
    worst_wait_s: float = 0.0
    worst_skips: int = 0

    def __post_init__(self) -> None:
        self.per_server: dict[str, int] = {}


async def _one(studio: Studio, req: RequestBase, owner: str, tally: _Tally) -> None:
    admission = studio.admit(req, owner=owner)
    end: Finished | Failed | None = None
    async for event in studio.run(admission, surface="api", owner=owner):
        if isinstance(event, Finished | Failed):
            end = event
    tally.worst_skips = max(tally.worst_skips, admission.turn.skips)
    if isinstance(end, Finished):
        tally.finished += 1
        tally.per_server[end.server] = tally.per_server.get(end.server, 0) + 1
        tally.worst_wait_s = max(tally.worst_wait_s, end.timings.get("studio_wait_s", 0.0))
    else:
        tally.failed += 1


async def run_room(count: int, routing: str, *, sessions: bool) -> Room:
    """A fresh set of `count` servers; `sessions`: people keep IN_FLIGHT_EACH jobs going
    (the swaps workload, from cold servers), else everything at once on warmed servers (the
    throughput workload)."""
    async with fake_servers(count) as urls:
        labels = ",".join(f"s{i + 1}={url}" for i, url in enumerate(urls))
        data = tempfile.mkdtemp(prefix="bench-servers-")     # the studio id; no library
        library = LibraryConfig.from_env({"STUDIO_LIBRARY": "off", "STUDIO_DATA_DIR": data})
        settings = studio_settings(labels, routing=routing, library=library,
                                   max_queue_per_person=64, poll_interval_s=0.5)
        ctx = build_context(settings, env={})
        await ctx.start()
        tally = _Tally()
        try:
            # Let the monitor see every server (readiness) before the first job.
            async with asyncio.timeout(30):
                while not all(s.online for s in ctx.monitor.server_snapshots().values()):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            if not sessions:
                await asyncio.gather(*(_warm(ctx.studio, label) for label in ctx.clients))
            before = await fake_counters(urls)
            started = time.monotonic()
            if sessions:
                await asyncio.gather(*(
                    _session(ctx.studio, p, tally) for p in range(SWAP_PEOPLE)
                ))
            else:
                await asyncio.gather(*(
                    _one(ctx.studio, request(("generate", "edit")[(i + i // PEOPLE) % 2], i),
                         f"person{i % PEOPLE}", tally)
                    for i in range(JOBS)
                ))
            wall = time.monotonic() - started
        finally:
            await ctx.aclose()
        after = await fake_counters(urls)
    counts = {key: after[key] - before[key] for key in after}
    return Room(count, routing, tally.finished, tally.failed, wall, counts["model_swaps"],
                counts["model_loads"], tally.worst_wait_s, tally.worst_skips,
                dict(sorted(tally.per_server.items())))


async def _warm(studio: Studio, server: str) -> None:
    """One tiny generate job on `server` (its text encoder, VAE and a UNet loaded)."""
    tiny = GenerateRequest("warm up", SIZE, SIZE, seed=1, steps=1)
    async for _ in studio.run(studio.admit(tiny, owner="warm-up", server=server)):
        pass


async def _session(studio: Studio, person: int, tally: _Tally) -> None:
    """One person: SWAP_JOBS_EACH jobs, IN_FLIGHT_EACH at a time, kinds alternating (each
    person starts on another one, so both models are wanted all the time)."""
    kinds = [("generate", "edit")[(person + j) % 2] for j in range(SWAP_JOBS_EACH)]
    lanes = [kinds[lane::IN_FLIGHT_EACH] for lane in range(IN_FLIGHT_EACH)]

    async def lane(number: int, mine: list[str]) -> None:
        for j, kind in enumerate(mine):
            seed = person * 1000 + number * 100 + j
            await _one(studio, request(kind, seed), f"person{person}", tally)

    await asyncio.gather(*(lane(n, mine) for n, mine in enumerate(lanes)))


async def measure() -> ServersBench:
    throughput = []
    for count in SERVER_COUNTS:
        throughput.append(await run_room(count, "affinity", sessions=False))
    affinity = await run_room(2, "affinity", sessions=True)
    least = await run_room(2, "least-loaded", sessions=True)
    defaults = studio_settings("http://127.0.0.1:1")
    return ServersBench(tuple(throughput), affinity, least, defaults.scheduling_max_skips,
                        defaults.scheduling_max_wait_s)


async def run(_fake: Any = None) -> ServersBench:
    result = await measure()
    print("\n".join(result.lines()), flush=True)
    return result


# --- how far one studio process goes (docs/scaling.md) -----------------------------------------

LIMIT_SERVERS = 4
LIMIT_CLIENTS = (8, 32, 128)
LIMIT_SECONDS = 12.0


@dataclass(frozen=True)
class LimitStep:
    clients: int
    jobs: int
    seconds: float
    refused: int
    latency_ms: Stats
    studio_cpu_s: float          # the studio process's CPU over the step
    fakes_cpu_s: float

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.seconds

    @property
    def studio_ms_per_job(self) -> float:
        return self.studio_cpu_s * 1000 / self.jobs if self.jobs else float("nan")

    def line(self) -> str:
        return (f"  {self.clients:4d} clients: {self.jobs_per_s:6.1f} jobs/s, latency median "
                f"{self.latency_ms.median:6.0f} ms p95 {self.latency_ms.p95:6.0f} ms, studio "
                f"CPU {self.studio_cpu_s / self.seconds:4.0%} of a core = "
                f"{self.studio_ms_per_job:4.1f} ms/job, fakes {self.fakes_cpu_s / self.seconds:4.0%},"
                f" refused {self.refused}")


async def measure_limit(library: bool = True) -> list[LimitStep]:
    """LIMIT_SERVERS fakes with no step time (each job costs the fake a few ms of CPU) and
    the real studio (`python app.py`, its own process, library on) routing closed-loop API
    clients (each sends a 256² one-step generation, waits for the PNG, sends the next):
    jobs/s, latency and the studio's CPU per job as the clients grow."""
    from bench.burst import cpu_seconds, request, start_studio

    steps: list[LimitStep] = []
    async with fake_servers(LIMIT_SERVERS, step_delay=0.0, load_delay=0.0) as urls:
        comfy = ",".join(f"g{i + 1}={url}" for i, url in enumerate(urls))
        caps = {"STUDIO_MAX_QUEUE_PER_PERSON": "1000", "STUDIO_MAX_QUEUE": "1000",
                "STUDIO_LIBRARY": "shared" if library else "off"}
        fake_pids = _pids_listening(urls)
        with tempfile.TemporaryDirectory(prefix="bench-limit-") as data_dir:
            proc, port = await start_studio(comfy, data_dir, caps)
            try:
                for clients in LIMIT_CLIENTS:
                    steps.append(await _limit_step(proc.pid, fake_pids, port, clients,
                                                   request, cpu_seconds))
                    print(steps[-1].line(), flush=True)
            finally:
                proc.terminate()
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(15):
                        await proc.wait()
    return steps


def _pids_listening(urls: list[str]) -> list[int]:
    """The fake processes' pids (children of this process running tests.fake_comfy)."""
    import os

    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            with open(f"/proc/{entry}/cmdline", "rb") as cmd:
                args = cmd.read().split(b"\0")
            if b"tests.fake_comfy" in args and any(
                url.rsplit(":", 1)[1].encode() in args for url in urls
            ):
                pids.append(int(entry))
    return pids


async def _limit_step(studio_pid: int, fake_pids: list[int], port: int, clients: int,
                      request: Any, cpu_seconds: Any) -> LimitStep:
    import json

    latencies: list[float] = []
    refused = 0
    stop = time.monotonic() + LIMIT_SECONDS

    async def client(number: int) -> None:
        nonlocal refused
        i = 0
        while time.monotonic() < stop:
            body = json.dumps({"prompt": f"limit {number} {i}", "size": "256x256",
                               "steps": 1, "seed": number * 100000 + i}).encode()
            answer = await request("127.0.0.1", port, "POST", "/v1/images/generations", body)
            if answer.status == 200:
                latencies.append(answer.seconds * 1000)
            else:
                refused += 1
                await asyncio.sleep(0.05)
            i += 1

    studio_before = cpu_seconds(studio_pid)
    fakes_before = sum(cpu_seconds(pid) for pid in fake_pids)
    started = time.monotonic()
    await asyncio.gather(*(client(n) for n in range(clients)))
    seconds = time.monotonic() - started
    return LimitStep(clients, len(latencies), seconds, refused, Stats.of(latencies),
                     cpu_seconds(studio_pid) - studio_before,
                     sum(cpu_seconds(pid) for pid in fake_pids) - fakes_before)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.servers")
    parser.add_argument("--limit", action="store_true",
                        help="how far one studio process goes (docs/scaling.md) instead")
    parser.add_argument("--no-library", action="store_true",
                        help="--limit with STUDIO_LIBRARY=off (what the library costs)")
    args = parser.parse_args()
    quiet_logs()
    print("\n".join(machine_lines()))
    asyncio.run(measure_limit(not args.no_library) if args.limit else run())


if __name__ == "__main__":
    main()

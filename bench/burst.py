"""(g) A burst against the API (issue 9's "Done when"): 1,500 requests at 500/s to
/v1/images/generations, one API key, against the real studio (`python app.py`, its own
process) and the fake ComfyUI (its own process, a small step delay). The excess must be
refused at once with 429 + Retry-After, /healthz must answer within 0.5 s (p99) throughout,
and every accepted job must complete.

The clients are raw asyncio sockets (one connection per request, HTTP/1.1, `Connection:
close`): an HTTP library would cost more CPU than the studio at 500 requests a second on a
2-core machine. /healthz is probed from a process of its own (every 20 ms, blocking
http.client), so the burst client's own scheduling lag does not count against the studio; that
lag is reported too. `python -m bench.burst [--requests N --rate R]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from bench.common import ROOT, Stats, fake_process, free_port, load_average, percentile

API_KEY = "sk-burst"
STEP_DELAY_S = 0.01
STEPS = 4
HEALTH_EVERY_S = 0.02
REQUEST_TIMEOUT_S = 120.0


@dataclass
class Answer:
    status: int
    seconds: float           # from sending to the whole answer
    retry_after: str | None = None
    at: float = 0.0          # wall clock when it was sent (the health prober's samples)


@dataclass
class BurstResult:
    requests: int
    rate: float
    answers: list[Answer]
    health: list[Answer]     # from just before the burst until every answer was in
    during: list[Answer]     # sent while the burst was being sent
    send_s: float
    drain_s: float
    caps: str
    errors: Counter[str] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        by_status = Counter(a.status for a in self.answers)
        refused = [a.seconds * 1000 for a in self.answers if a.status == 429]
        accepted = [a.seconds * 1000 for a in self.answers if a.status == 200]
        health = sorted(a.seconds * 1000 for a in self.health)
        during = sorted(a.seconds * 1000 for a in self.during)
        health_bad = sum(1 for a in self.health if a.status != 200)
        retry = Counter(a.retry_after for a in self.answers if a.status == 429)
        out = [
            f"  {self.requests} POST /v1/images/generations at {self.rate:.0f}/s (sent in "
            f"{self.send_s:.2f} s), one key; {self.caps}; fake step delay "
            f"{STEP_DELAY_S * 1000:.0f} ms × {STEPS} steps; studio and fake in their own "
            "processes",
            f"  answers: {dict(sorted(by_status.items()))}  (client notes: "
            f"{dict(self.errors) or 0})",
            Stats.of(refused).line("429 answered in"),
            Stats.of(accepted).line("200 (job done) in"),
            f"  Retry-After values: {dict(retry.most_common(5))}",
            Stats.of(during).line("/healthz while sending"),
            Stats.of(health).line("/healthz until drained"),
            f"  /healthz p99 while sending={self.healthz_p99_ms:.1f} ms, until drained="
            f"{percentile(health, 99) if health else math.nan:.1f} ms, max="
            f"{max(health) if health else math.nan:.1f} ms, non-200: {health_bad}",
            f"  every accepted job completed: {by_status.get(200, 0)} of "
            f"{by_status.get(200, 0)} (drained {self.drain_s:.1f} s after the last send)",
        ]
        return out

    @property
    def healthz_p99_ms(self) -> float:
        """/healthz's p99 while the burst was being sent."""
        during = sorted(a.seconds * 1000 for a in self.during)
        return percentile(during, 99) if during else math.nan


async def request(host: str, port: int, method: str, path: str, body: bytes = b"") -> Answer:
    async with asyncio.timeout(REQUEST_TIMEOUT_S):
        return await _request(host, port, method, path, body)


async def _request(host: str, port: int, method: str, path: str, body: bytes) -> Answer:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        head = (f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Authorization: Bearer {API_KEY}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        writer.write(head + body)
        await writer.drain()
        raw = await reader.read(-1)   # until the server closes
    finally:
        writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    headers = rest.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    retry = next((line.split(":", 1)[1].strip() for line in headers.split("\r\n")
                  if line.startswith("retry-after:")), None)
    return Answer(int(status_line.split()[1]), time.perf_counter() - started, retry)


def cpu_seconds(pid: int) -> float:
    """A process's user + system CPU time so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def start_studio(comfy_url: str, data_dir: str, env_caps: dict[str, str]
                       ) -> tuple[asyncio.subprocess.Process, int]:
    port = free_port()
    env = {**os.environ, "COMFYUI_URL": comfy_url, "STUDIO_API_KEY": API_KEY,
           "STUDIO_DATA_DIR": data_dir, "GRADIO_ANALYTICS_ENABLED": "False", **env_caps}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "app.py", "--port", str(port), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    async with httpx.AsyncClient(timeout=2.0) as http:
        deadline = time.monotonic() + 90
        while True:
            try:
                if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return proc, port
            except httpx.TransportError:
                pass
            if proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError("the studio did not start")
            await asyncio.sleep(0.2)


HEALTH_PROBER = """
import http.client, json, sys, threading, time
port, every = int(sys.argv[1]), float(sys.argv[2])
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
out = []
while not stop.is_set():
    started = time.perf_counter()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/healthz")
        status = conn.getresponse().status
        conn.close()
    except OSError:
        status = 0
    out.append([status, time.perf_counter() - started, time.time()])
    time.sleep(every)
print(json.dumps(out))
"""


async def burst(port: int, requests: int, rate: float
                ) -> tuple[list[Answer], list[Answer], list[Answer], float, float, Counter[str]]:
    host = "127.0.0.1"
    errors: Counter[str] = Counter()
    prober = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HEALTH_PROBER, str(port), str(HEALTH_EVERY_S),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    lag: list[float] = []
    done = asyncio.Event()
    window = [0.0, 0.0]      # wall clock: the first and last send

    async def measure_lag() -> None:
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            lag.append(time.perf_counter() - before - 0.01)

    async def one(i: int) -> Answer | None:
        body = json.dumps({"prompt": f"burst {i}", "size": "256x256", "steps": STEPS,
                           "seed": i}).encode()
        try:
            return await request(host, port, "POST", "/v1/images/generations", body)
        except (OSError, TimeoutError) as exc:
            errors[type(exc).__name__] += 1
            return None

    lagging = asyncio.create_task(measure_lag())
    await asyncio.sleep(0.5)                      # a baseline before the burst
    started = time.perf_counter()
    window[0] = time.time()
    tasks = []
    for i in range(requests):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    send_s = time.perf_counter() - started
    window[1] = time.time()
    answers = [a for a in await asyncio.gather(*tasks) if a is not None]
    drain_s = time.perf_counter() - started - send_s
    done.set()
    await lagging
    stdout, _ = await prober.communicate(b"stop")
    health = [Answer(status, seconds, None, at) for status, seconds, at in json.loads(stdout)]
    lagged = sorted(lag)
    errors["client loop lag p99 ms"] = round(percentile(lagged, 99) * 1000) if lagged else 0
    during = [a for a in health if window[0] <= a.at <= window[1]]
    return answers, health, during, send_s, drain_s, errors


async def run(fake: object = None, requests: int = 1500, rate: float = 500.0,
              caps: dict[str, str] | None = None) -> BurstResult:
    caps = caps or {}
    async with fake_process(step_delay=STEP_DELAY_S) as comfy_url:
        with tempfile.TemporaryDirectory(prefix="bench-burst-") as data_dir:
            proc, port = await start_studio(comfy_url, data_dir, caps)
            try:
                cpu_before = cpu_seconds(proc.pid)
                answers, health, during, send_s, drain_s, errors = await burst(
                    port, requests, rate)
                errors["studio CPU ms per request"] = round(
                    (cpu_seconds(proc.pid) - cpu_before) * 1000 / requests, 2)
            finally:
                proc.terminate()
                try:
                    async with asyncio.timeout(15):
                        await proc.wait()
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
    described = ", ".join(f"{k}={v}" for k, v in caps.items()) or "default caps (16 per "\
        "person, 200 in all)"
    result = BurstResult(requests, rate, answers, health, during, send_s, drain_s, described,
                         errors)
    print("\n".join(result.lines()), flush=True)
    print(f"  (load average {load_average()})", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.burst")
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--per-person", help="STUDIO_MAX_QUEUE_PER_PERSON for this run")
    args = parser.parse_args()
    caps = {"STUDIO_MAX_QUEUE_PER_PERSON": args.per_person} if args.per_person else {}
    asyncio.run(run(requests=args.requests, rate=args.rate, caps=caps))
    return 0


if __name__ == "__main__":
    sys.exit(main())

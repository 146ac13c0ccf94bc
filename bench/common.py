"""Shared bench helpers: the fake, the studio's settings and context, stats, RSS, the app in
a uvicorn thread. Numbers are printed, never asserted: these are measurements, not tests."""

from __future__ import annotations

import asyncio
import atexit
import logging
import math
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from backend.library import LibraryConfig
from backend.settings import Settings

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent


def studio_settings(comfy_url: str, **overrides: Any) -> Settings:
    """An empty environment: the developer's STUDIO_* variables do not change the numbers."""
    values: dict[str, Any] = {"comfy_url": comfy_url, "job_timeout_s": 60.0,
                              "library": LibraryConfig.from_env({"STUDIO_DATA_DIR": _data_dir()})}
    values.update(overrides)
    return Settings.from_env({}, **values)


def _data_dir() -> str:
    """A throwaway data folder (library, studio id) per bench process, never ./data."""
    folder = tempfile.mkdtemp(prefix="bench-data-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@dataclass(frozen=True)
class Stats:
    """Summary of a list of durations, in milliseconds."""

    n: int
    median: float
    p90: float
    p95: float
    mean: float
    minimum: float
    maximum: float

    @classmethod
    def of(cls, values_ms: Sequence[float]) -> Stats:
        values = sorted(values_ms)
        if not values:
            nan = math.nan
            return cls(0, nan, nan, nan, nan, nan, nan)
        return cls(
            n=len(values),
            median=statistics.median(values),
            p90=percentile(values, 90),
            p95=percentile(values, 95),
            mean=statistics.fmean(values),
            minimum=values[0],
            maximum=values[-1],
        )

    def line(self, label: str) -> str:
        return (
            f"  {label:<32} n={self.n:<3} median={self.median:7.1f} ms  p90={self.p90:7.1f} ms"
            f"  p95={self.p95:7.1f} ms  min={self.minimum:6.1f}  max={self.maximum:6.1f}"
        )


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on sorted input."""
    if not sorted_values:
        return math.nan
    rank = (len(sorted_values) - 1) * pct / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    if low == high:
        return float(sorted_values[low])
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def rss_mb() -> float:
    """This process's resident set size (VmRSS), in MiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return math.nan


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServedApp:
    """`app.create_app(settings)` served by uvicorn in a daemon thread on a free port."""

    url: str
    app: Any
    server: Any
    thread: threading.Thread

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def serve_app(settings: Settings, *, ready_within_s: float = 60.0) -> ServedApp:
    import uvicorn

    import app as app_module

    application = app_module.create_app(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning",
                       lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="bench-studio", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_within_s
    while time.monotonic() < deadline and thread.is_alive():
        try:
            if httpx.get(url + "/gradio_api/info", timeout=2.0).status_code == 200:
                return ServedApp(url, application, server, thread)
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.should_exit = True
    raise RuntimeError("the studio app did not start")


def quiet_logs() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def load_average() -> str:
    try:
        return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        return "?"


def standalone(section: Callable[[Any], Awaitable[Any]]) -> None:
    """Run one section on its own fake ComfyUI (`python -m bench.<section>`)."""
    from tests.fake_comfy import FakeComfy

    quiet_logs()
    fake = FakeComfy().start()
    try:
        asyncio.run(section(fake))
    finally:
        fake.close()


@asynccontextmanager
async def fake_process(step_delay: float = 0.0, ready_within_s: float = 30.0
                       ) -> AsyncIterator[str]:
    """A fake ComfyUI in its own process (`python -m tests.fake_comfy`), as a real ComfyUI
    is: it does not share this process's GIL. Yields its URL; terminated on exit."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fake_comfy", "--host", "127.0.0.1", "--port", str(port),
        "--step-delay", str(step_delay), "--log-level", "WARNING", cwd=ROOT, stdout=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=2.0) as http:
            deadline = time.monotonic() + ready_within_s
            while True:
                try:
                    if (await http.get(url + "/system_stats")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError("the fake ComfyUI process did not start")
                await asyncio.sleep(0.1)
        yield url
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


def machine_lines() -> list[str]:
    """nproc, CPU model, RAM and Python version: the context every number needs."""
    import platform

    cpu = "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next((ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")),
                       "?")
    except OSError:
        pass
    ram = "?"
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            kb = int(next(ln for ln in info if ln.startswith("MemTotal:")).split()[1])
            ram = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return [
        f"  nproc={len(os.sched_getaffinity(0))}  cpu={cpu}  ram={ram}",
        f"  python={platform.python_version()} ({platform.python_implementation()})"
        f"  platform={platform.platform()}",
    ]

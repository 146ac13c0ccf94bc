"""(b) The same job through the studio's two surfaces — the Gradio UI's Generate event (by
gradio_client, and by the browser's queue protocol over httpx) and the OpenAI-style
`/v1/images/generations` — with the real app (`app.create_app`) served by uvicorn in a thread
on a free port, against the bare client, interleaved in one process; the fake ComfyUI runs in
its own process.

Each surface is timed to the image in the caller's hands: the bare client's /view bytes, the
Gradio result file fetched from its URL, the API's b64 PNG decoded from the JSON.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from bench.bare import BareClient, variant_of
from bench.common import (
    ServedApp,
    Stats,
    fake_process,
    serve_app,
    standalone,
    studio_settings,
)
from bench.gradio_ui import ClientRunner, QueueRunner
from bench.overhead import PROMPT, SIZE, generate_request, studio_context, studio_job

log = logging.getLogger(__name__)


LABELS = {
    "bare": "bare client",
    "api": "POST /v1/images/generations",
    "gradio_client": "Gradio Generate, gradio_client",
    "gradio_queue": "Gradio Generate, queue protocol",
}


@dataclass(frozen=True)
class SurfaceResult:
    jobs: int
    stats: dict[str, Stats]
    added_ms: dict[str, float]      # median over rounds of (surface - bare)

    def lines(self) -> list[str]:
        bare = self.stats["bare"]
        out = [f"  {self.jobs} jobs each, interleaved, 1024×1024, 20 steps, fake delays 0 (its"
               " own process); app served by uvicorn in a thread"]
        for name, stats in self.stats.items():
            extra = "" if name == "bare" else (
                f"  → {stats.median / bare.median:.2f}x, +{self.added_ms[name]:.0f} ms")
            out.append(stats.line(LABELS[name]) + extra)
        return out


async def api_job(http: httpx.AsyncClient, seed: int) -> bytes:
    response = await http.post("/v1/images/generations", json={
        "prompt": PROMPT, "size": f"{SIZE}x{SIZE}", "seed": seed, "response_format": "b64_json",
    })
    response.raise_for_status()
    return base64.b64decode(response.json()["data"][0]["b64_json"])


async def measure(served: ServedApp, comfy_url: str, jobs: int = 15,
                  warmup: int = 2) -> SurfaceResult:
    seeds = itertools.count(50_000)
    def tab_values(seed: int) -> dict[str, Any]:
        return {"prompt": PROMPT, "width": SIZE, "height": SIZE, "seed": seed,
                "randomize": False}

    client_runner = await asyncio.to_thread(ClientRunner, served.url)
    try:
        async with (
            studio_context(comfy_url) as ctx,
            BareClient(comfy_url) as bare,
            httpx.AsyncClient(base_url=served.url, timeout=120.0) as http,
        ):
            workflow = (await studio_job(ctx, generate_request(next(seeds)))).workflow
            queue_runner = await QueueRunner.connect(http)
            runs: dict[str, Callable[[int], Awaitable[bytes]]] = {
                "bare": lambda seed: bare.run(variant_of(workflow, seed)),
                "api": lambda seed: api_job(http, seed),
                "gradio_client": lambda seed: asyncio.to_thread(
                    client_runner.run, tab_values(seed)),
                "gradio_queue": lambda seed: queue_runner.run(tab_values(seed)),
            }
            times: dict[str, list[float]] = {name: [] for name in runs}
            for i in range(warmup + jobs):
                for name, job in runs.items():
                    start = time.perf_counter()
                    image = await job(next(seeds))
                    elapsed = (time.perf_counter() - start) * 1000.0
                    if not image.startswith(b"\x89PNG"):
                        raise RuntimeError(f"{name} did not return a PNG")
                    if i >= warmup:
                        times[name].append(elapsed)
    finally:
        await asyncio.to_thread(client_runner.close)

    def added(name: str) -> float:
        return statistics.median(s - b for b, s in zip(times["bare"], times[name], strict=True))

    return SurfaceResult(jobs, {name: Stats.of(t) for name, t in times.items()},
                         {name: added(name) for name in times if name != "bare"})


async def run(fake: Any, jobs: int = 12) -> SurfaceResult:
    # The fake in its own process, like ComfyUI: the app, its Gradio and the bench's clients
    # already share this process's GIL.
    async with fake_process() as comfy_url:
        served = await asyncio.to_thread(serve_app, studio_settings(comfy_url))
        try:
            result = await measure(served, comfy_url, jobs=jobs)
        finally:
            await asyncio.to_thread(served.close)
    print("\n".join(result.lines()), flush=True)
    return result


if __name__ == "__main__":
    standalone(run)

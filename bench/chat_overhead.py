"""(h) What the chat adds: the same generation through `/v1/images/generations` and through
`/v1/chat/completions` (the turn "a lighthouse at dawn, 1024x1024", routed by the rules to the
same request; seeds differ, or ComfyUI would answer the repeat from its cache), interleaved, against the real app (uvicorn thread) and the fake ComfyUI in its
own process. Each is timed to the PNG bytes in the caller's hands; the chat's added time is the
median over rounds of (chat − images). Target: ≤ 20 ms.
`python -m bench.chat_overhead`.
"""

from __future__ import annotations

import asyncio
import base64
import statistics
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import httpx

from backend.library import LibraryConfig
from bench.common import Stats, fake_process, serve_app, standalone, studio_settings

PROMPT = "a lighthouse at dawn"
SIZE = 1024


@dataclass(frozen=True)
class ChatOverhead:
    jobs: int
    images: Stats
    chat: Stats
    added_ms: float
    reply_bytes: int
    images_bytes: int
    steps: dict[str, float]     # in process, median ms: the chat's own steps and the images'

    def step_line(self) -> str:
        s = self.steps
        return (f"  in process (median of 30): chat read+route {s['read_route']:.2f} ms, chat "
                f"reply (PNG, text, body, JSON) {s['chat_reply']:.1f} ms vs images body (PNG, "
                f"JSON) {s['images_reply']:.1f} ms → chat adds "
                f"{s['read_route'] + s['chat_reply'] - s['images_reply']:.1f} ms of its own")

    def lines(self) -> list[str]:
        return [
            f"  {self.jobs} jobs each, interleaved, {SIZE}×{SIZE}, 20 steps, fake delays 0 (its "
            "own process); app served by uvicorn in a thread",
            self.images.line("POST /v1/images/generations"),
            self.chat.line("POST /v1/chat/completions")
            + f"  → +{self.added_ms:.1f} ms (median of paired differences; target ≤ 20 ms)",
            f"  mean answer sizes: images {self.images_bytes / 1024:.0f} KiB, chat "
            f"{self.reply_bytes / 1024:.0f} KiB (the picture twice: markdown and "
            "message.images)",
            self.step_line(),
        ]


async def images_job(http: httpx.AsyncClient, seed: int) -> tuple[bytes, int]:
    response = await http.post("/v1/images/generations", json={
        "prompt": PROMPT, "size": f"{SIZE}x{SIZE}", "seed": seed,
    })
    response.raise_for_status()
    return base64.b64decode(response.json()["data"][0]["b64_json"]), len(response.content)


async def chat_job(http: httpx.AsyncClient, seed: int) -> tuple[bytes, int]:
    response = await http.post("/v1/chat/completions", json={
        "model": "qwen-image-chat",
        "messages": [{"role": "user", "content": f"{PROMPT}, {SIZE}x{SIZE}"}],
        "seed": seed,        # OpenAI's chat `seed` is the studio's seed
    })
    response.raise_for_status()
    url = response.json()["choices"][0]["message"]["images"][0]["image_url"]["url"]
    return base64.b64decode(url.partition(",")[2]), len(response.content)


async def run(fake: Any = None, jobs: int = 15, warmup: int = 2) -> ChatOverhead:
    with tempfile.TemporaryDirectory(prefix="bench-chat-") as data_dir:
        return await _run(jobs, warmup, LibraryConfig.from_env({"STUDIO_DATA_DIR": data_dir}))


async def _run(jobs: int, warmup: int, library: LibraryConfig) -> ChatOverhead:
    """The library (every result is saved) lives in a temporary folder, not ./data."""
    async with fake_process() as comfy_url:
        served = await asyncio.to_thread(serve_app, studio_settings(comfy_url, library=library))
        try:
            async with httpx.AsyncClient(base_url=served.url, timeout=120.0) as http:
                times: dict[str, list[float]] = {"images": [], "chat": []}
                sizes: dict[str, list[int]] = {"images": [], "chat": []}
                last_png = b""
                pair = (("images", images_job), ("chat", chat_job))
                for i in range(warmup + jobs):
                    # Seeds differ (ComfyUI would serve a repeated graph from its cache); the
                    # order alternates, so neither side always runs on a warmer process.
                    for k, (name, job) in enumerate(pair if i % 2 == 0 else pair[::-1]):
                        start = time.perf_counter()
                        png, size = await job(http, 70_000 + 2 * i + k)
                        elapsed = (time.perf_counter() - start) * 1000.0
                        if not png.startswith(b"\x89PNG"):
                            raise RuntimeError(f"{name} did not return a PNG")
                        sizes[name].append(size)
                        last_png = png
                        if i >= warmup:
                            times[name].append(elapsed)
        finally:
            await asyncio.to_thread(served.close)
    added = statistics.median(c - i for i, c in zip(times["images"], times["chat"], strict=True))
    steps = await own_steps(comfy_url, last_png, library)
    result = ChatOverhead(jobs, Stats.of(times["images"]), Stats.of(times["chat"]), added,
                          round(statistics.fmean(sizes["chat"])),
                          round(statistics.fmean(sizes["images"])), steps)
    print("\n".join(result.lines()), flush=True)
    return result


async def own_steps(comfy_url: str, picture: bytes, library: LibraryConfig,
                    rounds: int = 30) -> dict[str, float]:
    """The work only one route does, timed in process on a result of the runs above: the
    chat's reading and routing, and each route's answer from the finished picture."""
    import io

    from fastapi.responses import JSONResponse
    from PIL import Image

    from backend import http_api
    from backend.api import chat
    from backend.api.running import Result
    from backend.chat import completion_body
    from backend.context import build_context
    from backend.events import Finished

    ctx = build_context(studio_settings(comfy_url, library=library), env={})
    body = {"model": "qwen-image-chat",
            "messages": [{"role": "user", "content": f"{PROMPT}, {SIZE}x{SIZE}"}]}
    image = Image.open(io.BytesIO(picture)).convert("RGB")
    result = Result(Finished([image], 1, {}, {}, "generate"), image, "item")
    timed: dict[str, list[float]] = {"read_route": [], "chat_reply": [], "images_reply": []}
    try:
        for _ in range(rounds):
            start = time.perf_counter()
            call = await chat.read_call(ctx, body)
            chat.request_for(call.decision, call.turn, ctx.registry)
            timed["read_route"].append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            content, png = chat._reply(call.decision, result)
            JSONResponse(completion_body(call.meta, content, [png]))
            timed["chat_reply"].append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            JSONResponse(http_api._images_body([result], PROMPT))
            timed["images_reply"].append((time.perf_counter() - start) * 1000)
    finally:
        await ctx.aclose()
    return {name: statistics.median(values) for name, values in timed.items()}


if __name__ == "__main__":
    standalone(run)

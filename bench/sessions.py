"""(e) 16 concurrent sessions through ONE studio: every result reaches the session that asked.

Sixteen generate requests with distinct prompts and seeds run first one at a time (the
expected image of each: the fake's sampler is deterministic from seed + prompt), then all at
once as 16 concurrent `studio.run` streams, like 16 browser sessions on one server. A session
is "lost" if its stream does not end in Finished, "mixed" if its image is not exactly its own
expected image (or equals another session's). The 16 expected images are checked to be
pairwise different first, so a mix-up could not go unnoticed. The studio process's RSS
(VmRSS; the fake runs in this process too) is read before and after the concurrent run.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from backend.jobs import Failed, Finished, Queued
from backend.operations import GenerateRequest
from bench.common import rss_mb, standalone
from bench.overhead import studio_context, studio_job

SESSIONS = 16
SIZE = 512
STEP_DELAY_S = 0.005


@dataclass(frozen=True)
class SessionsResult:
    sessions: int
    finished: int
    lost: int
    mixed: int
    distinct_expected: int
    distinct_prompt_ids: int
    deepest_position: int       # the largest Queued.position seen: they really queued up
    rss_before_mb: float
    rss_after_mb: float
    errors: tuple[str, ...]

    def lines(self) -> list[str]:
        out = [
            f"  {self.sessions} concurrent studio.run generate jobs ({SIZE}×{SIZE}, distinct "
            f"prompts/seeds, fake step delay {STEP_DELAY_S * 1000:.0f} ms)",
            f"  finished {self.finished}, lost {self.lost}, mixed {self.mixed} "
            f"({self.distinct_expected} distinct expected images, "
            f"{self.distinct_prompt_ids} distinct prompt ids; deepest queue position "
            f"{self.deepest_position})",
            f"  RSS before {self.rss_before_mb:.1f} MiB, after {self.rss_after_mb:.1f} MiB "
            f"({self.rss_after_mb - self.rss_before_mb:+.1f} MiB; fake in the same process)",
        ]
        out += [f"  error: {e}" for e in self.errors]
        return out


def session_request(i: int) -> GenerateRequest:
    return GenerateRequest(
        prompt=f"session {i}: a banana on a {['red', 'blue', 'green', 'gold'][i % 4]} plate",
        width=SIZE, height=SIZE, seed=9_000 + 37 * i,
    )


def fingerprint(finished: Finished) -> str:
    """Exact pixels (and size/mode) of the first image."""
    image = finished.images[0]
    digest = hashlib.sha256(image.tobytes())
    digest.update(f"{image.size}{image.mode}".encode())
    return digest.hexdigest()


async def session(ctx: Any, request: GenerateRequest) -> tuple[Finished, int]:
    """One session's stream to its Finished event, and the queue position it was given."""
    position = -1
    async with aclosing(ctx.studio.run(request)) as events:
        async for event in events:
            if isinstance(event, Queued):
                position = max(position, event.position)
            elif isinstance(event, Finished):
                return event, position
            elif isinstance(event, Failed):
                raise RuntimeError(f"{event.kind}: {event.message}")
    raise RuntimeError("the stream ended without Finished")


async def measure(comfy_url: str, sessions: int = SESSIONS) -> SessionsResult:
    requests = [session_request(i) for i in range(sessions)]
    async with studio_context(comfy_url) as ctx:
        expected = [fingerprint(await studio_job(ctx, r)) for r in requests]
        gc.collect()
        rss_before = rss_mb()
        results = await asyncio.gather(*(session(ctx, r) for r in requests),
                                       return_exceptions=True)
        gc.collect()
        rss_after = rss_mb()
    outcomes = [r[0] if isinstance(r, tuple) else r for r in results]
    deepest = max((r[1] for r in results if isinstance(r, tuple)), default=-1)
    finished = [o for o in outcomes if isinstance(o, Finished)]
    errors = tuple(f"session {i}: {o}" for i, o in enumerate(outcomes)
                   if not isinstance(o, Finished))
    mixed = 0
    for i, outcome in enumerate(outcomes):
        if isinstance(outcome, Finished):
            got = fingerprint(outcome)
            others = expected[:i] + expected[i + 1:]
            if got != expected[i] or got in others:
                mixed += 1
    return SessionsResult(
        sessions=sessions,
        finished=len(finished),
        lost=sessions - len(finished),
        mixed=mixed,
        distinct_expected=len(set(expected)),
        distinct_prompt_ids=len({f.prompt_id for f in finished}),
        deepest_position=deepest,
        rss_before_mb=rss_before,
        rss_after_mb=rss_after,
        errors=errors,
    )


async def run(fake: Any, sessions: int = SESSIONS) -> SessionsResult:
    fake.set_delays(step=STEP_DELAY_S, load=0.0, node=0.0)
    try:
        result = await measure(fake.url, sessions)
    finally:
        fake.set_delays(step=0.0)
    print("\n".join(result.lines()), flush=True)
    return result


if __name__ == "__main__":
    standalone(run)

"""(e) 16 concurrent sessions through ONE studio: every result reaches the session that asked.

Sixteen generate requests with distinct prompts and seeds run first one at a time (the
expected image of each: the fake's sampler is deterministic from seed + prompt), then all at
once as 16 concurrent `studio.run` streams, like 16 browser sessions on one server — twice. A
session is "lost" if its stream does not end in Finished, "mixed" if its image is not exactly
its own expected image (or equals another session's). The 16 expected images are checked to be
pairwise different, so a mix-up could not go unnoticed. The studio process's RSS (VmRSS; the
fake runs in its own process) is read before and after each concurrent round: growth in the
first round is the allocator's high-water mark, growth in the second would be a leak.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from backend.jobs import Failed, Finished, Queued
from backend.modes.generate import GenerateRequest
from bench.common import fake_process, rss_mb, standalone
from bench.overhead import studio_context, studio_job

SESSIONS = 16
SIZE = 512
STEP_DELAY_S = 0.005
ROUNDS = 2      # a second round shows whether memory keeps growing


@dataclass(frozen=True)
class SessionsResult:
    sessions: int
    rounds: int
    finished: int
    lost: int
    mixed: int
    distinct_expected: int
    distinct_prompt_ids: int
    deepest_position: int       # the largest Queued.position seen: they really queued up
    rss_mb: tuple[float, ...]   # before, then after each round (results dropped)
    errors: tuple[str, ...]

    def lines(self) -> list[str]:
        out = [
            f"  {self.sessions} concurrent studio.run generate jobs ({SIZE}×{SIZE}, distinct "
            f"prompts/seeds, fake step delay {STEP_DELAY_S * 1000:.0f} ms), {self.rounds} rounds",
            f"  finished {self.finished}, lost {self.lost}, mixed {self.mixed} "
            f"({self.distinct_expected} distinct expected images, "
            f"{self.distinct_prompt_ids} distinct prompt ids; deepest queue position "
            f"{self.deepest_position})",
            "  studio RSS (VmRSS) before, then after each round: "
            + " → ".join(f"{mb:.1f}" for mb in self.rss_mb) + " MiB",
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


async def concurrent_round(ctx: Any, requests: list[GenerateRequest]
                           ) -> list[tuple[str, str | None, int] | BaseException]:
    """All sessions at once; per session (image fingerprint, prompt id, deepest position)."""
    results = await asyncio.gather(*(session(ctx, r) for r in requests), return_exceptions=True)
    return [(fingerprint(r[0]), r[0].prompt_id, r[1]) if isinstance(r, tuple) else r
            for r in results]


async def measure(comfy_url: str, sessions: int = SESSIONS, rounds: int = ROUNDS
                  ) -> SessionsResult:
    requests = [session_request(i) for i in range(sessions)]
    async with studio_context(comfy_url) as ctx:
        expected = [fingerprint(await studio_job(ctx, r)) for r in requests]
        gc.collect()
        rss = [rss_mb()]
        outcomes = []
        for _ in range(rounds):
            outcomes += await concurrent_round(ctx, requests)
            gc.collect()
            rss.append(rss_mb())
    errors = tuple(f"session {i % sessions}: {g}" for i, g in enumerate(outcomes)
                   if not isinstance(g, tuple))
    done = [(i % sessions, g) for i, g in enumerate(outcomes) if isinstance(g, tuple)]
    mixed = sum(
        1 for i, (print_, _, _) in done
        if print_ != expected[i] or print_ in expected[:i] + expected[i + 1:]
    )
    return SessionsResult(
        sessions=sessions,
        rounds=rounds,
        finished=len(done),
        lost=sessions * rounds - len(done),
        mixed=mixed,
        distinct_expected=len(set(expected)),
        distinct_prompt_ids=len({prompt_id for _, (_, prompt_id, _) in done}),
        deepest_position=max((position for _, (_, _, position) in done), default=-1),
        rss_mb=tuple(rss),
        errors=errors,
    )


async def run(fake: Any, sessions: int = SESSIONS) -> SessionsResult:
    # The fake in its own process, so the RSS figures are the studio's alone.
    async with fake_process(step_delay=STEP_DELAY_S) as comfy_url:
        result = await measure(comfy_url, sessions)
    print("\n".join(result.lines()), flush=True)
    return result


if __name__ == "__main__":
    standalone(run)

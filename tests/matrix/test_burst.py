"""A burst against /v1/images/generations (issue 9), small enough for `make test`: the excess
is refused with 429 + Retry-After, /healthz keeps answering 200 throughout, and every accepted
job completes with its picture. The full-size run (1,500 requests at 500/s, with timings) is
`python -m bench.burst`; numbers in docs/benchmarks.md."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.matrix.conftest import MatrixStudio

pytestmark = pytest.mark.timeout(120)
REQUESTS = 120


async def _burst(studio: MatrixStudio) -> tuple[list[httpx.Response], list[int]]:
    limits = httpx.Limits(max_connections=REQUESTS + 4, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=studio.url, headers=studio.headers(), timeout=90,
                                 limits=limits) as http:
        # the matrix studio booted with ComfyUI down: start from a studio that sees it up
        assert (await http.get("/healthz?fresh=1")).status_code == 200
        health: list[int] = []
        done = asyncio.Event()

        async def probe() -> None:
            while not done.is_set():
                health.append((await http.get("/healthz")).status_code)
                await asyncio.sleep(0.02)

        prober = asyncio.create_task(probe())
        answers = await asyncio.gather(*(
            http.post("/v1/images/generations",
                      json={"prompt": f"burst {i}", "size": "256x256", "steps": 3, "seed": i})
            for i in range(REQUESTS)
        ))
        done.set()
        await prober
        return list(answers), health


def test_a_burst_is_refused_at_the_cap_and_the_rest_completes(studio: MatrixStudio) -> None:
    studio.fake.set_delays(step=0.01)
    answers, health = asyncio.run(_burst(studio))
    statuses = [r.status_code for r in answers]
    accepted = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code == 429]
    assert len(accepted) + len(refused) == REQUESTS, sorted(set(statuses))
    cap = studio.settings.max_queue_per_person
    assert len(accepted) >= cap and refused            # the line filled, the excess refused
    for response in refused:
        assert int(response.headers["retry-after"]) >= 1
        assert response.json()["error"]["code"] == "queue_full"
    for response in accepted:                           # every accepted job completed
        assert response.json()["data"][0]["b64_json"]
    assert health and set(health) == {200}

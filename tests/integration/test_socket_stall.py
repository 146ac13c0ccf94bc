"""A websocket that stays open but goes silent (the fake's "stall all sockets" fault: no
messages, no pongs) is detected and replaced, and short jobs stop waiting for the slow
stall poll: they finish from /history at the pace of the socket-down polling instead.
Issue 9 item 8: 10 jobs of ~0.05 s took 30.5 s (each waited for the 5 s poll)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from backend.comfy import ComfyClient, PromptDone
from tests.fake_comfy import FakeComfy
from tests.integration.test_client_faults import _png, simple_graph

PING_S = 0.3            # ping interval and pong timeout in these tests
STALL_POLL_S = 5.0      # the production default: the fix must not depend on it
DOWN_POLL_S = 0.5
JOBS = 10
HANG_GUARD_S = 60


def _graph(image: str, n: int) -> dict[str, Any]:
    graph = simple_graph(image)
    graph["2"]["inputs"]["width"] = 32 + n      # a new output every time (no cache hit)
    return graph


async def _run(client: ComfyClient, graph: dict[str, Any]) -> list[Any]:
    async with asyncio.timeout(HANG_GUARD_S):
        return [item async for item in client.execute(graph)]


async def test_stalled_socket_is_replaced_and_short_jobs_finish_at_once(
    fake_comfy: FakeComfy,
) -> None:
    client = ComfyClient(fake_comfy.url, stall_poll_s=STALL_POLL_S, down_poll_s=DOWN_POLL_S,
                         ping_interval_s=PING_S, ping_timeout_s=PING_S)
    async with client:
        ref = await client.upload_image(_png())
        started = time.monotonic()
        healthy = await _run(client, _graph(ref.load_name, 0))
        run_s = time.monotonic() - started
        assert isinstance(healthy[-1], PromptDone) and not healthy[-1].recovered
        assert client.stale_sockets_replaced == 0

        fake_comfy.stall_websockets(True)
        started = time.monotonic()
        results = [await _run(client, _graph(ref.load_name, n)) for n in range(1, JOBS + 1)]
        elapsed = time.monotonic() - started

        # Detection: the next ping within PING_S, its pong timeout PING_S (the close is an
        # abort). Then each job is found done by the first /history polls (0.1 s, doubling,
        # at most DOWN_POLL_S apart). Before the fix every job waited STALL_POLL_S: 50 s.
        bound = 2 * PING_S + JOBS * (run_s + 2 * DOWN_POLL_S) + 1.0
        assert elapsed < bound, (elapsed, bound)
        assert elapsed < JOBS * STALL_POLL_S / 4
        assert client.stale_sockets_replaced >= 1

        # every job got its own result, exactly once
        dones = [items[-1] for items in results]
        assert all(isinstance(d, PromptDone) and d.images("4") for d in dones)
        assert all(sum(isinstance(i, PromptDone) for i in items) == 1 for items in results)
        files = [d.images("4")[0].filename for d in dones if isinstance(d, PromptDone)]
        assert len(set(files)) == JOBS
        assert client.watched_prompt_ids == frozenset()

        # the stall ends: a fresh socket comes up and messages flow over it again
        fake_comfy.stall_websockets(False)
        assert await client.wait_connected(15)
        epoch = client.epoch
        again = await _run(client, _graph(ref.load_name, 99))
        assert isinstance(again[-1], PromptDone) and not again[-1].recovered
        assert client.epoch == epoch and epoch >= 2


async def test_a_job_in_flight_when_the_socket_stalls_gets_its_result(
    fake_comfy: FakeComfy,
) -> None:
    client = ComfyClient(fake_comfy.url, stall_poll_s=STALL_POLL_S, down_poll_s=DOWN_POLL_S,
                         ping_interval_s=PING_S, ping_timeout_s=PING_S)
    async with client:
        ref = await client.upload_image(_png())
        fake_comfy.set_delays(node=0.2)
        items: list[Any] = []
        started = time.monotonic()
        async with asyncio.timeout(HANG_GUARD_S):
            async for item in client.execute(_graph(ref.load_name, 1)):
                items.append(item)
                if len(items) == 2:     # PromptQueued, then the first message: stall now
                    fake_comfy.stall_websockets(True)
        done = items[-1]
        assert isinstance(done, PromptDone) and done.recovered and done.images("4")
        assert time.monotonic() - started < STALL_POLL_S
        assert client.stale_sockets_replaced >= 1


async def test_a_result_the_socket_never_reported_triggers_a_ping_check(
    fake_comfy: FakeComfy,
) -> None:
    # Keepalive pings far apart: only the "done in /history, never reported" signal can
    # reveal the stale socket here.
    client = ComfyClient(fake_comfy.url, stall_poll_s=0.3, down_poll_s=DOWN_POLL_S,
                         ping_interval_s=60.0, ping_timeout_s=PING_S)
    async with client:
        ref = await client.upload_image(_png())
        client.open_socket()
        assert await client.wait_connected(5)
        fake_comfy.stall_websockets(True)
        items = await _run(client, _graph(ref.load_name, 1))
        assert isinstance(items[-1], PromptDone) and items[-1].recovered
        async with asyncio.timeout(5):
            while client.stale_sockets_replaced == 0:  # noqa: ASYNC110 - polling a counter
                await asyncio.sleep(0.02)
        assert not client.connected


async def test_a_healthy_quiet_socket_is_kept(fake_comfy: FakeComfy) -> None:
    # No traffic at all for several ping intervals: the pongs keep it.
    client = ComfyClient(fake_comfy.url, ping_interval_s=0.1, ping_timeout_s=PING_S)
    async with client:
        client.open_socket()
        assert await client.wait_connected(5)
        await asyncio.sleep(1.0)
        assert client.connected and client.epoch == 1 and client.stale_sockets_replaced == 0
        assert fake_comfy.counters["ws_connections"] == 1

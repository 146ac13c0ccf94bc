"""Prompts a killed studio left in ComfyUI's queue, and their removal on the next start.

Every prompt a ComfyClient posts carries `extra_data["banana_studio"] = {"studio": <studio
id>, "session": <that client's session id>}`; ComfyUI keeps extra_data in each `/queue` item
(`[number, prompt_id, prompt, extra_data, outputs_to_execute]`). An orphan is a prompt with
our studio id and another session: a previous process of this studio (killed, so it never
cancelled them) posted it. Other clients' prompts and other studios' carry no mark or
another id and are never touched.

Caveat: two live processes of one studio (the same data dir) against one ComfyUI would see
each other's prompts as orphans when one of them starts; give each its own STUDIO_DATA_DIR.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from backend.comfy.client import ComfyClient
from backend.comfy.errors import ComfyError
from backend.comfy.types import QueueItem

log = logging.getLogger(__name__)

RETRY_FIRST_S = 1.0
RETRY_MAX_S = 10.0


@dataclass(frozen=True)
class OrphanReport:
    """What remove_orphans did. `checked` False: ComfyUI did not answer, nothing was done."""

    interrupted: tuple[str, ...] = ()   # the running prompt, if it was an orphan
    deleted: tuple[str, ...] = ()       # pending orphans
    checked: bool = True
    error: str | None = None

    @property
    def removed(self) -> int:
        return len(self.interrupted) + len(self.deleted)


def is_orphan(item: QueueItem, studio_id: str, session_id: str) -> bool:
    return item.studio_id == studio_id and item.studio_session != session_id


async def remove_orphans(client: ComfyClient, studio_id: str) -> OrphanReport:
    """Delete the pending prompts marked with `studio_id` that this client did not post, and
    interrupt the running one if it is such a prompt. Never raises for ComfyUI's sake: when it
    cannot be asked, the report says `checked=False`."""
    try:
        snapshot = await client.queue()
        pending = tuple(i.prompt_id for i in snapshot.pending
                        if is_orphan(i, studio_id, client.session_id))
        running = tuple(i.prompt_id for i in snapshot.running
                        if is_orphan(i, studio_id, client.session_id))
        # Pending first, so none of them starts when the running one is interrupted. The
        # interrupt names its prompt: ComfyUI ignores it if that one is no longer running.
        if pending:
            await client.delete_pending(pending)
        for prompt_id in running:
            await client.interrupt(prompt_id)
    except ComfyError as exc:
        log.info("could not look for prompts a previous studio process left in ComfyUI's "
                 "queue yet: %s", exc)
        return OrphanReport(checked=False, error=exc.message)
    report = OrphanReport(interrupted=running, deleted=pending)
    if report.removed:
        parts = ([f"{len(running)} running, interrupted"] if running else []) + (
            [f"{len(pending)} waiting, deleted"] if pending else [])
        log.warning(
            "removed %d prompt%s a previous studio process left in ComfyUI's queue (%s)",
            report.removed, "" if report.removed == 1 else "s", "; ".join(parts),
        )
    else:
        log.debug("no prompts from a previous studio process in ComfyUI's queue")
    return report


async def remove_orphans_when_online(client: ComfyClient, studio_id: str) -> OrphanReport:
    """remove_orphans, retried until ComfyUI answers once: at once when the client's socket
    comes up (whoever opened it), else every few seconds (1 s, doubling to 10 s)."""
    delay = RETRY_FIRST_S
    while True:
        report = await remove_orphans(client, studio_id)
        if report.checked:
            return report
        if client.connected:        # the socket is up but HTTP failed: just wait
            await asyncio.sleep(delay)
        else:
            await client.wait_connected(delay)
        delay = min(delay * 2, RETRY_MAX_S)


def start_orphan_sweep(client: ComfyClient, studio_id: str) -> asyncio.Task[OrphanReport]:
    """remove_orphans_when_online in a task (cancel it on shutdown)."""
    return asyncio.get_running_loop().create_task(
        remove_orphans_when_online(client, studio_id), name="comfy-orphan-sweep"
    )

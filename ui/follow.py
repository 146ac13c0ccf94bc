"""The follower: one streaming handler per page that turns the person's jobs into the page.

Started after every submit (`.then` of a Run) and on page load; when the page already has a
live follower, the new one only wakes it and ends. It follows every active UI job of the
page's person and owner — in every tab, so a Generate that finishes while Edit is open lands
in Generate — and streams, for each tab, its progress line, live preview, run button label
("Queue" while the tab has a job) and a `landed` token that changes when a job ends (the tab's
`landed.change` then shows the results: ui/runner.py), plus the queue strip and the history's
token (the history strip refreshes on it: ui/history.py). It ends when nothing is left to
follow.

One stream per page rather than one per tab: all tabs share the queue strip and the history
strip, and two streams writing one component can cross (a stale list arriving last). Every
value it streams is a plain string (never `gr.skip()`, which makes Gradio rebuild the component
on every update), and it yields at most every `MIN_GAP_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import gradio as gr

from backend.context import StudioContext
from backend.desk import Desk, Job
from ui.identity import Visitor, visitor_for
from ui.live import Track, current, ended_status, preview_html, status_html_for, strip_html
from ui.pages import Page, Pages, SessionRefused
from ui.tabspec import Component, TabSpec

log = logging.getLogger(__name__)

MIN_GAP_S = 0.1
_END = object()


class Follower:
    def __init__(
        self,
        ctx: StudioContext,
        pages: Pages,
        specs: Mapping[str, TabSpec],
        strip: gr.HTML,
        history_token: gr.Textbox,
    ) -> None:
        self.ctx = ctx
        self.pages = pages
        self.specs = specs
        self.strip = strip
        self.history_token = history_token
        self._labels = {name: str(spec.controls.run.value) for name, spec in specs.items()}
        self._numbers = itertools.count(1)

    @property
    def outputs(self) -> list[Component]:
        out: list[Component] = []
        for spec in self.specs.values():
            out += [spec.panel.status, spec.panel.preview, spec.controls.run, spec.panel.landed]
        return [*out, self.strip, self.history_token]

    def values(self, page: Page) -> tuple[str, ...]:
        """The page as the follower streams it, in `outputs` order."""
        out: list[str] = []
        for name in self.specs:
            view = page.tab(name).view
            out += [view.status, view.preview, "Queue" if view.busy else self._labels[name],
                    view.landed]
        return (*out, self.strip_for(page.visitor), str(page.history_version))

    def strip_for(self, visitor: Visitor) -> str:
        views = [v for v in self.ctx.desk.views(visitor.person)
                 if v.ticket.who.owner == visitor.owner and v.ticket.who.surface == "ui"]
        several = len(self.ctx.studio.scheduler.servers()) > 1
        return strip_html(views, self.ctx.registry, several)

    def jobs_of(self, page: Page) -> list[Job]:
        """The page's person's active UI jobs for its owner, plus those it just submitted."""
        visitor = page.visitor
        jobs = [j for j in self.ctx.desk.active(visitor.person)
                if j.ticket.who.owner == visitor.owner and j.ticket.who.surface == "ui"]
        for job_id in sorted(page.submitted):
            job = self.ctx.desk.find(visitor.person, job_id)
            if job is not None and job not in jobs:
                jobs.append(job)
        page.submitted.clear()
        return jobs

    async def stream(
        self, browser_id: object, request: gr.Request
    ) -> AsyncIterator[tuple[Any, ...]]:
        """The Gradio handler (outputs: `self.outputs`)."""
        visitor = visitor_for(self.ctx.settings.library, request, browser_id)
        try:
            page = self.pages.enter(visitor)
        except SessionRefused:
            yield (gr.skip(),) * len(self.outputs)
            return
        if page.follower:
            page.wake()        # the page's live follower picks the new job up
            yield self.values(page)
            return
        async for values in self._follow(page):
            yield values

    async def _follow(self, page: Page) -> AsyncIterator[tuple[str, ...]]:
        me = next(self._numbers)
        page.follower = me
        inbox: asyncio.Queue[object] = asyncio.Queue()
        page.inbox = inbox
        tracks: dict[str, Track] = {}
        pumps: dict[str, asyncio.Task[None]] = {}
        try:
            while page.follower == me:
                for job in self.jobs_of(page):
                    if job.id not in pumps and job.id not in tracks:
                        tracks[job.id] = _track(self.ctx.desk, job)
                        pumps[job.id] = asyncio.get_running_loop().create_task(
                            _pump(job, inbox), name=f"follow-{job.id}")
                self._draw(page, tracks)
                if not pumps:
                    break
                yield self.values(page)
                await asyncio.sleep(MIN_GAP_S)      # coalesce: the inbox keeps everything
                items = [await inbox.get()]
                while not inbox.empty():
                    items.append(inbox.get_nowait())
                for item in items:
                    if item is None:
                        continue                    # a wake-up: look for new jobs
                    job_id, event = item  # type: ignore[misc]
                    if event is _END:
                        pumps.pop(job_id, None)
                    elif job_id in tracks and tracks[job_id].apply(event):
                        self._landed(page, tracks[job_id])
            if page.follower == me:
                page.follower, page.inbox = 0, None   # before the last yield: a submit now
            yield self.values(page)                   # starts a new follower
        finally:
            for task in pumps.values():
                task.cancel()
            if page.follower == me:
                page.follower, page.inbox = 0, None

    def _landed(self, page: Page, track: Track) -> None:
        state = page.tab(track.mode)
        state.view.landed = f"{track.job_id}:{time.monotonic_ns()}"
        if track.saved is not None and track.saved.items:
            page.history_version += 1

    def _draw(self, page: Page, tracks: Mapping[str, Track]) -> None:
        by_mode: dict[str, list[Track]] = {}
        for track in tracks.values():
            by_mode.setdefault(track.mode, []).append(track)
        for mode, mode_tracks in by_mode.items():
            view = page.tab(mode).view
            status = status_html_for(mode_tracks)
            if status is None:
                view.status = ended_status(mode_tracks[-1])
                view.preview, view.busy = "", False
                continue
            view.status, view.busy = status, True
            running = current(mode_tracks)
            if running is not None and running.no_previews and page.hint_job is None:
                page.hint_job = running.job_id
            hint = running is not None and page.hint_job == running.job_id
            view.preview = preview_html(running, hint)


def _track(desk: Desk, job: Job) -> Track:
    ticket = job.ticket
    count = 1
    if ticket.batch is not None:
        count = sum(1 for j in desk.jobs(ticket.who.person) if j.ticket.batch == ticket.batch)
    return Track(job.id, ticket.mode, index=ticket.index, count=max(count, ticket.index + 1))


async def _pump(job: Job, inbox: asyncio.Queue[object]) -> None:
    try:
        async for event in job.events():
            inbox.put_nowait((job.id, event))
    except Exception:       # a follower must outlive any one job's trouble
        log.exception("following job %s failed", job.id)
    finally:
        with contextlib.suppress(Exception):
            inbox.put_nowait((job.id, _END))


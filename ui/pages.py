"""What the studio keeps per open page (a Gradio session), bound to the logged-in user.

Gradio keys its own per-session state by the session hash alone, which the browser chooses: a
logged-in user who replays another user's hash would be handed that page's state. So nothing
of a person's is kept in `gr.State` here; a `Page` remembers the user it was opened by, and a
request for it from anyone else is refused (`SessionRefused`). Pages are dropped when Gradio
says the page went away (`demo.unload`), and the oldest idle ones past a cap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from PIL import Image

from ui.identity import Visitor

MAX_PAGES = 5000


class SessionRefused(Exception):
    """This page session was opened by another login."""

    message = "This page belongs to another login. Reload the page to start your own session."


@dataclass
class TabView:
    """What the follower shows in one tab (the values it streams; see ui/follow.py)."""

    status: str
    preview: str = ""
    busy: bool = False          # the run button reads "Queue"
    landed: str = ""            # changes whenever a job of the tab ends (the results follow)


@dataclass(frozen=True)
class Shown:
    """One result as a tab shows it (several for a batch)."""

    job_id: str
    result: str | Image.Image       # the library's PNG, served; the picture if it was not kept
    thumb: str | Image.Image
    info: str
    seed: int
    item_id: str | None = None
    mask: str | Image.Image | None = None
    before: str | None = None       # the first input picture, for the compare slider


@dataclass
class TabState:
    view: TabView
    shown: list[Shown] = field(default_factory=list)   # the latest batch's results, in order
    batch: str | None = None
    picked: int = 0


@dataclass
class Page:
    session: str
    user: str | None
    visitor: Visitor
    idle_status: str
    tabs: dict[str, TabState] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)   # item ids the history strip shows
    history_version: int = 0            # grows when one of the page's jobs is saved
    hint_job: str | None = None         # the job that showed the "no previews" hint (once)
    submitted: set[str] = field(default_factory=set)    # job ids not yet seen by a follower
    follower: int = 0                   # the live follower's number (0: none)
    inbox: asyncio.Queue[object] | None = None          # the live follower's; None wakes it
    used: float = field(default_factory=time.monotonic)

    def tab(self, mode: str) -> TabState:
        state = self.tabs.get(mode)
        if state is None:
            state = self.tabs[mode] = TabState(TabView(self.idle_status))
        return state

    def wake(self) -> None:
        """Tell the live follower (if any) to look for new jobs."""
        if self.inbox is not None:
            self.inbox.put_nowait(None)


class Pages:
    def __init__(self, idle_status: str, cap: int = MAX_PAGES) -> None:
        self._pages: dict[str, Page] = {}
        self._idle_status = idle_status
        self._cap = cap

    def enter(self, visitor: Visitor) -> Page:
        """This visitor's page (made on first use); SessionRefused when the session was opened
        by another login."""
        page = self._pages.get(visitor.session)
        if page is None:
            page = Page(visitor.session, visitor.user, visitor, self._idle_status)
            self._pages[visitor.session] = page
            self._trim()
        elif page.user != visitor.user:
            raise SessionRefused(SessionRefused.message)
        page.visitor = visitor          # the browser id may arrive after the first request
        page.used = time.monotonic()
        return page

    def drop(self, session: str, user: str | None) -> Page | None:
        page = self._pages.get(session)
        if page is None or page.user != user:
            return None
        del self._pages[session]
        page.follower = 0
        page.wake()
        return page

    def of_person(self, person: str) -> Iterable[Page]:
        return [p for p in self._pages.values() if p.visitor.person == person]

    def __len__(self) -> int:
        return len(self._pages)

    def _trim(self) -> None:
        if len(self._pages) <= self._cap:
            return
        idle = sorted((p for p in self._pages.values() if not p.follower), key=lambda p: p.used)
        for page in idle[: len(self._pages) - self._cap]:
            del self._pages[page.session]

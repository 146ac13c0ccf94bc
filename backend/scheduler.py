"""Studio-side dispatch: jobs wait here, not in ComfyUI's queue, and go to ComfyUI in turn.

`Studio.run` asks for a turn just before it submits (inputs already uploaded and bound), so
the only work between one job's end and the next one's start is one POST /prompt.

Why one of ours in ComfyUI at a time (`depth=1`), not one running plus one pending:
- the choice of the next job is made when the GPU frees, knowing every job that arrived
  meanwhile; with a pending prompt it is made a whole job earlier and cannot be undone
  (ComfyUI runs its queue in order), so late arrivals that share the loaded model miss it;
- the GPU idles only for the hand-off (completion message → our POST → ComfyUI starts),
  measured at a few milliseconds on loopback by `bench/scheduling.py`, against 5-10 s per
  model swap and seconds to minutes per job;
- a waiting job is cancelled here without touching ComfyUI.

Policies: "fifo" releases in arrival order. "group" releases the oldest job whose diffusion
model (its group) is the one the last released job loaded (a job without one, e.g. background
removal, fits anywhere), so generate and edit jobs stop alternating models; a job that has
been passed over `max_skips` times by later arrivals, or has waited `max_wait_s`, goes next
regardless. So no job ever sees more than `max_skips` later jobs go before it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from backend.settings import Settings

log = logging.getLogger(__name__)

POLICIES = ("fifo", "group")
DEFAULT_MAX_SKIPS = 3
DEFAULT_MAX_WAIT_S = 120.0


@dataclass(frozen=True)
class SchedulerConfig:
    policy: str = "fifo"
    max_skips: int = DEFAULT_MAX_SKIPS
    max_wait_s: float = DEFAULT_MAX_WAIT_S
    depth: int = 1  # how many of our prompts may be in ComfyUI at once (see the module doc)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(
                f"Unknown scheduling policy {self.policy!r}: use one of {', '.join(POLICIES)} "
                "(STUDIO_SCHEDULING)."
            )
        if self.max_skips < 0 or self.max_wait_s < 0 or self.depth < 1:
            raise ValueError(f"Invalid scheduler limits: {self}")

    @classmethod
    def from_settings(cls, settings: Settings) -> SchedulerConfig:
        return cls(
            policy=settings.scheduling,
            max_skips=settings.scheduling_max_skips,
            max_wait_s=settings.scheduling_max_wait_s,
        )


@dataclass(frozen=True)
class Waiting:
    """One waiting job as the monitor or a test sees it (`position` 0 = next)."""

    position: int
    group: str | None
    waited_s: float
    skips: int


@dataclass(eq=False)
class _Entry:
    seq: int
    group: str | None
    since: float
    skips: int = 0
    position: int = 0
    released: bool = False
    left: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class _View:
    """What the policy looks at; entries are given oldest first."""

    group: str | None
    since: float
    skips: int


def choose(
    waiting: Sequence[_View], loaded: str | None, config: SchedulerConfig, now: float
) -> int:
    """The index of the job to release next among `waiting` (oldest first, non-empty)."""
    if config.policy == "fifo":
        return 0
    for i, job in enumerate(waiting):
        if job.skips >= config.max_skips or now - job.since >= config.max_wait_s:
            return i  # the oldest overdue job; only older overdue jobs can pass it
    for i, job in enumerate(waiting):
        if job.group is None or job.group == loaded:
            return i
    return 0


def projected_order(
    waiting: Sequence[_View], loaded: str | None, config: SchedulerConfig, now: float
) -> list[int]:
    """Indices of `waiting` in the order they would be released if nobody else arrived."""
    rest = list(enumerate(waiting))
    order: list[int] = []
    while rest:
        i = choose([view for _, view in rest], loaded, config, now)
        index, view = rest.pop(i)
        order.append(index)
        if view.group is not None:
            loaded = view.group
        rest[:i] = [(k, _View(v.group, v.since, v.skips + 1)) for k, v in rest[:i]]
    return order


class Turn:
    """One job's place in the studio queue: `wait()` yields its position (jobs ahead of it,
    ours in ComfyUI included) whenever that changes and returns once it may submit;
    `leave()` gives the place or the ComfyUI slot back (idempotent; call it always)."""

    def __init__(self, scheduler: Scheduler, entry: _Entry) -> None:
        self._scheduler = scheduler
        self._entry = entry

    @property
    def released(self) -> bool:
        return self._entry.released

    @property
    def skips(self) -> int:
        return self._entry.skips

    async def wait(self) -> AsyncIterator[int]:
        entry = self._entry
        sent: int | None = None
        while not entry.released:
            if entry.left:
                raise RuntimeError("this turn was left before it came")
            if entry.position != sent:
                sent = entry.position
                yield sent
                continue  # re-check: things may have moved while the consumer had it
            entry.changed.clear()
            await entry.changed.wait()

    def leave(self) -> None:
        self._scheduler._leave(self._entry)


class Scheduler:
    """One per Studio. Single event loop, no locks: state changes only between awaits."""

    def __init__(
        self, config: SchedulerConfig | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config or SchedulerConfig()
        self._clock = clock
        self._waiting: list[_Entry] = []  # oldest first
        self._in_flight = 0
        self._loaded: str | None = None  # the group of the last released job that has one
        self._seq = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def loaded_group(self) -> str | None:
        return self._loaded

    def enter(self, group: str | None, *, since: float | None = None) -> Turn:
        """Queue a job whose diffusion model is `group`; `since` (clock time) keeps an earlier
        place, e.g. for an out-of-memory retry of a job that already waited its turn."""
        self._seq += 1
        entry = _Entry(self._seq, group, self._clock() if since is None else since)
        at = len(self._waiting)
        while at > 0 and self._waiting[at - 1].since > entry.since:
            at -= 1
        self._waiting.insert(at, entry)
        self._pump()
        return Turn(self, entry)

    def waiting(self) -> tuple[Waiting, ...]:
        """The waiting jobs in projected release order."""
        now = self._clock()
        jobs = sorted(self._waiting, key=lambda e: e.position)
        return tuple(Waiting(e.position, e.group, now - e.since, e.skips) for e in jobs)

    def _leave(self, entry: _Entry) -> None:
        if entry.left:
            return
        entry.left = True
        if entry.released:
            self._in_flight -= 1
        else:
            self._waiting.remove(entry)
            log.debug("job %d left the studio queue while waiting", entry.seq)
        self._pump()

    def _views(self) -> list[_View]:
        return [_View(e.group, e.since, e.skips) for e in self._waiting]

    def _pump(self) -> None:
        """Release jobs while ComfyUI has room for ours, then renumber those still waiting."""
        now = self._clock()
        while self._in_flight < self.config.depth and self._waiting:
            i = choose(self._views(), self._loaded, self.config, now)
            entry = self._waiting.pop(i)
            for older in self._waiting[:i]:
                older.skips += 1
            if i:
                log.debug("job %d (%s) goes before %d older job(s)", entry.seq, entry.group, i)
            entry.released = True
            self._in_flight += 1
            if entry.group is not None:
                self._loaded = entry.group
            entry.changed.set()
        order = projected_order(self._views(), self._loaded, self.config, now)
        for position, index in enumerate(order):
            entry = self._waiting[index]
            if entry.position != self._in_flight + position:
                entry.position = self._in_flight + position
                entry.changed.set()

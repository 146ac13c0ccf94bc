"""Studio-side dispatch: jobs wait here, not in ComfyUI's queue, and go to a server in turn.

`Studio.run` asks for a turn before it decodes anything, so a waiting job holds only what was
sent. Each ComfyUI server gets `depth` (default 1) of our prompts at a time:
- the choice of the next job is made when a GPU frees, knowing every job that arrived meanwhile
  (a pending prompt in ComfyUI could not be reordered: it runs its queue in order);
- the GPU idles only for the hand-off (our POST after its completion message), a few ms on
  loopback (`bench/scheduling.py`), against 5-10 s per model swap;
- a waiting job is cancelled here without touching ComfyUI.

Admission: at most `max_queue` jobs wait in the studio and `max_per_owner` per person; past
that `enter` raises `QueueFull` at once (the API answers 429 + Retry-After, the UI a sentence).

Order (policy "group", the default), in this priority:
1. a job passed over `max_skips` times, or waiting `max_wait_s`, goes first (oldest first);
2. fairness between people in rounds: each owner has a round counter (jobs released for it,
   and a newcomer joins the current round); only owners in the lowest round may go, so one
   person's batch of four never holds others behind all four;
3. within that, a job whose diffusion model (its group) is the one the server has loaded, or
   that loads none (background removal), goes before one that would swap models;
4. otherwise the owner whose oldest job is oldest.
A person's own jobs keep their order unless grouping passes one (bounded by rule 1).
"fifo" releases in arrival order, ignoring owners and models.

Several servers: a free server takes the job the policy picks for what it has loaded; routing
"affinity" prefers the server whose loaded model matches (then one that holds none, so no warm
model is evicted; a free server does not evict its warm model for a job whose model another
server has warm and will be free within a swap's time, `swap_s`), then the shortest expected
wait (our
jobs in flight there plus other clients' prompts in its ComfyUI queue), then round robin;
"least-loaded" ignores models and picks the server with the shortest line (round robin among
equals). The fairness rules above choose the job whichever server asks, so their bounds hold
across servers. A server marked unavailable takes nothing, unless every server is: then jobs
go anyway and fail fast (as with one server) rather than wait with no end.

Work per join/leave does not grow with the queue: O(owners) to pick, O(1) to join; waiting jobs
learn their place from a throttled tick (`position_refresh_s`), not from every change.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from backend.settings import Settings

log = logging.getLogger(__name__)

POLICIES = ("fifo", "group")
ROUTINGS = ("affinity", "least-loaded")
DEFAULT_SERVER = "default"
# How far into one person's line the policy looks for a job that shares the loaded model.
SCAN_LIMIT = 32
# Before any job finished, a job is assumed to take this long (Retry-After estimates).
ASSUMED_JOB_S = 30.0


@dataclass(frozen=True)
class SchedulerConfig:
    policy: str = "group"
    max_skips: int = 3
    max_wait_s: float = 120.0
    depth: int = 1                     # our prompts per ComfyUI server at once (see the doc)
    max_queue: int = 200               # jobs waiting in the studio, all people together
    max_per_owner: int = 16            # jobs one person may have waiting
    routing: str = "affinity"
    position_refresh_s: float = 0.25   # waiting jobs re-read their place at most this often
    # What a model swap costs (the guide: 5-10 s). Affinity lets a job wait this long for the
    # server that has its model warm rather than evict another server's warm model.
    swap_s: float = 8.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SchedulerConfig:
        return cls(
            policy=settings.scheduling,
            max_skips=settings.scheduling_max_skips,
            max_wait_s=settings.scheduling_max_wait_s,
            max_queue=settings.max_queue,
            max_per_owner=settings.max_queue_per_person,
            routing=settings.routing,
        )

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(
                f"Unknown scheduling policy {self.policy!r}: use one of {', '.join(POLICIES)} "
                "(STUDIO_SCHEDULING)."
            )
        if self.routing not in ROUTINGS:
            raise ValueError(
                f"Unknown routing {self.routing!r}: use one of {', '.join(ROUTINGS)} "
                "(STUDIO_ROUTING)."
            )
        if (
            self.max_skips < 0 or self.max_wait_s < 0 or self.depth < 1
            or self.max_queue < 1 or self.max_per_owner < 1 or self.position_refresh_s < 0
        ):
            raise ValueError(f"Invalid scheduler limits: {self}")


class QueueFull(Exception):
    """The studio's line (or this person's share of it) is full: try again later."""

    def __init__(self, message: str, retry_after_s: int, scope: str) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s
        self.scope = scope            # "studio" or "owner"


@dataclass(frozen=True)
class Waiting:
    """One waiting job as the monitor or a test sees it (`position` 0 = next)."""

    position: int
    owner: str
    group: str | None
    waited_s: float
    skips: int


@dataclass(eq=False)
class _Entry:
    seq: int
    owner: str
    group: str | None
    since: float
    servers: frozenset[str] | None      # None: any server
    skips: int = 0
    server: str | None = None           # where it was released to
    left: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def released(self) -> bool:
        return self.server is not None

    def fits(self, server: str) -> bool:
        return self.servers is None or server in self.servers


@dataclass(eq=False)
class _Owner:
    name: str
    round: int = 0
    jobs: OrderedDict[int, _Entry] = field(default_factory=OrderedDict)  # oldest first
    by_group: dict[str | None, OrderedDict[int, _Entry]] = field(default_factory=dict)

    def add(self, entry: _Entry, *, first: bool) -> None:
        for line in (self.jobs, self.by_group.setdefault(entry.group, OrderedDict())):
            line[entry.seq] = entry
            if first:
                line.move_to_end(entry.seq, last=False)

    def remove(self, entry: _Entry) -> None:
        del self.jobs[entry.seq]
        line = self.by_group[entry.group]
        del line[entry.seq]
        if not line:
            del self.by_group[entry.group]

    def head(self) -> _Entry:
        return next(iter(self.jobs.values()))

    def first(self, server: str, limit: int = SCAN_LIMIT) -> Iterable[_Entry]:
        """This person's oldest jobs that `server` can run, at most `limit` of them."""
        return itertools.islice((e for e in self.jobs.values() if e.fits(server)), limit)

    def head_for(self, server: str) -> _Entry | None:
        head = self.head()
        return head if head.fits(server) else next(iter(self.first(server, 1)), None)

    def oldest_warm(self, server: str, loaded: str | None) -> _Entry | None:
        """The oldest job on the loaded model (or on none), among those `server` can run."""
        found: _Entry | None = None
        for group in {loaded, None}:
            line = self.by_group.get(group)
            if not line:
                continue
            entry = next(iter(line.values()))
            if not entry.fits(server):
                entry = next((e for e in line.values() if e.fits(server)), entry)
                if not entry.fits(server):
                    continue
            if found is None or entry.seq < found.seq:
                found = entry
        return found


@dataclass(eq=False)
class _Server:
    label: str
    in_flight: int = 0
    loaded: str | None = None          # the group of the last job released here
    available: bool = True
    external: int = 0                  # other clients' prompts in its ComfyUI queue


class Turn:
    """One job's place: `wait()` yields its position (jobs ahead of it, ours running included)
    when that changes and returns once it may submit (then `server` says where); `leave()` gives
    the place or the server slot back (idempotent; call it always)."""

    def __init__(self, scheduler: Scheduler, entry: _Entry) -> None:
        self._scheduler = scheduler
        self._entry = entry

    @property
    def released(self) -> bool:
        return self._entry.released

    @property
    def server(self) -> str | None:
        return self._entry.server

    @property
    def skips(self) -> int:
        return self._entry.skips

    @property
    def since(self) -> float:
        """When the job joined the line (the scheduler's clock)."""
        return self._entry.since

    def position(self) -> int:
        return self._scheduler._position(self._entry)

    async def wait(self) -> AsyncIterator[int]:
        entry = self._entry
        sent: int | None = None
        while not entry.released:
            if entry.left:
                raise RuntimeError("this turn was left before it came")
            position = self._scheduler._position(entry)
            if position != sent:
                sent = position
                yield sent
                continue  # re-check: things may have moved while the consumer had it
            entry.wake.clear()
            await entry.wake.wait()

    def leave(self) -> None:
        self._scheduler._leave(self._entry)


class Scheduler:
    """One per Studio. Single event loop, no locks: state changes only between awaits."""

    def __init__(
        self,
        config: SchedulerConfig | None = None,
        *,
        servers: Sequence[str] = (DEFAULT_SERVER,),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not servers:
            raise ValueError("a scheduler needs at least one server")
        self.config = config or SchedulerConfig()
        self._clock = clock
        self._servers: dict[str, _Server] = {label: _Server(label) for label in servers}
        self._owners: dict[str, _Owner] = {}        # owners with waiting jobs
        self._rounds: dict[str, int] = {}           # every owner's round, kept while it waits
        self._waiting = 0
        self._seq = itertools.count(1)
        self._rr = itertools.count()                # round robin among equal servers
        self._last_group: str | None = None         # least-loaded: the last group released
        self._vtime = 0                              # the round of the last released job
        self._job_s = ASSUMED_JOB_S                 # moving average of a job's time in ComfyUI
        self._job_s_measured = False                # the first finished job replaces the guess
        self._running: dict[int, Turn] = {}         # released and not yet left, by seq
        self._turns: dict[int, Turn] = {}           # waiting, by seq (moved to _running)
        self._released_at: dict[int, float] = {}
        self._tick: asyncio.TimerHandle | None = None

    # -- what others read -------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        return sum(s.in_flight for s in self._servers.values())

    @property
    def waiting_count(self) -> int:
        return self._waiting

    @property
    def loaded_group(self) -> str | None:
        """The single server's loaded group (the first server's, with several)."""
        return next(iter(self._servers.values())).loaded

    def loaded(self, server: str) -> str | None:
        return self._servers[server].loaded

    def servers(self) -> tuple[str, ...]:
        return tuple(self._servers)

    def available(self, server: str) -> bool:
        return self._servers[server].available

    def in_flight_on(self, server: str) -> int:
        """Our jobs released to `server` and not yet done."""
        return self._servers[server].in_flight

    def running(self) -> tuple[Turn, ...]:
        """The jobs released to a server and not yet done, oldest first."""
        return tuple(self._running.values())

    def waiting(self) -> tuple[Waiting, ...]:
        """Every waiting job with its estimated position, next first (O(n): tests, monitor)."""
        now = self._clock()
        jobs = [e for o in self._owners.values() for e in o.jobs.values()]
        views = [
            Waiting(self._position(e), e.owner, e.group, now - e.since, e.skips) for e in jobs
        ]
        return tuple(sorted(views, key=lambda w: (w.position, -w.waited_s)))

    # -- servers (the monitor keeps these current) --------------------------------------------
    def set_available(self, server: str, available: bool) -> None:
        state = self._servers[server]
        if state.available != available:
            state.available = available
            if not available:
                state.loaded = None
            self._pump()

    def forget_loaded(self, server: str) -> None:
        """ComfyUI restarted or was freed: nothing is loaded there any more."""
        self._servers[server].loaded = None

    def set_external_load(self, server: str, prompts: int) -> None:
        self._servers[server].external = max(0, prompts)

    # -- joining and leaving --------------------------------------------------------------------
    def enter(
        self,
        group: str | None,
        *,
        owner: str = "",
        since: float | None = None,
        servers: frozenset[str] | None = None,
        capped: bool = True,
    ) -> Turn:
        """Queue a job whose diffusion model is `group` for `owner`. `since` (clock time) keeps
        an earlier place, e.g. for an out-of-memory retry (which is not `capped`: it was
        admitted already); `servers` limits where it may run. Raises QueueFull at once when
        the studio's or this person's line is full."""
        if capped:
            self._admit(owner)
        entry = _Entry(next(self._seq), owner, group, self._clock() if since is None else since,
                       servers)
        person = self._owners.get(owner)
        if person is None:
            # A newcomer joins the round being served (so it goes before the rest of someone
            # else's batch), but gets no credit for the time it was away.
            person = _Owner(owner, max(self._rounds.get(owner, 0), self._vtime))
            self._owners[owner] = person
        person.add(entry, first=since is not None and bool(person.jobs)
                   and person.head().since > since)
        self._waiting += 1
        turn = Turn(self, entry)
        self._turns[entry.seq] = turn
        self._pump()
        self._changed()
        return turn

    def _admit(self, owner: str) -> None:
        person = self._owners.get(owner)
        if person is not None and len(person.jobs) >= self.config.max_per_owner:
            raise QueueFull(
                f"You already have {len(person.jobs)} jobs waiting, the most one person may "
                "queue; wait for one to finish.",
                self._retry_after(1), "owner",
            )
        if self._waiting >= self.config.max_queue:
            raise QueueFull(
                f"The studio is busy: {self._waiting} jobs are waiting, the most it queues. "
                "Try again in a moment.",
                self._retry_after(self._waiting), "studio",
            )

    def _retry_after(self, ahead: int) -> int:
        slots = max(1, sum(1 for s in self._servers.values() if s.available)) * self.config.depth
        return max(1, min(300, math.ceil(self._job_s * ahead / slots)))

    def _leave(self, entry: _Entry) -> None:
        if entry.left:
            return
        entry.left = True
        if entry.released:
            assert entry.server is not None
            self._servers[entry.server].in_flight -= 1
            self._running.pop(entry.seq, None)
            started = self._released_at.pop(entry.seq, None)
            if started is not None:
                took = self._clock() - started
                weight = 0.2 if self._job_s_measured else 1.0
                self._job_s = (1 - weight) * self._job_s + weight * took
                self._job_s_measured = True
        else:
            self._remove_waiting(entry)
            log.debug("job %d left the studio queue while waiting", entry.seq)
        self._pump()
        self._changed()

    def _remove_waiting(self, entry: _Entry) -> Turn:
        turn = self._turns.pop(entry.seq)
        person = self._owners[entry.owner]
        person.remove(entry)
        self._waiting -= 1
        if not person.jobs:
            self._rounds[person.name] = person.round
            del self._owners[person.name]
            if len(self._rounds) > 4 * self.config.max_queue:   # forget long-gone people
                active = set(self._owners)
                self._rounds = {k: v for k, v in self._rounds.items() if k in active}
        return turn

    # -- choosing -------------------------------------------------------------------------------
    def _pump(self) -> None:
        """Release jobs while some server has room for ours."""
        while self._waiting:
            servers = self._servers.values()
            # Every server down: let jobs go and fail fast rather than wait with no end.
            anywhere = not any(s.available for s in servers)
            free = [
                s for s in servers
                if (s.available or anywhere) and s.in_flight < self.config.depth
            ]
            if not free:
                return
            picked = self._pick(free)
            if picked is None:
                return
            server, entry = picked
            self._release(server, entry)

    def _pick(self, free: list[_Server]) -> tuple[_Server, _Entry] | None:
        if self.config.routing == "least-loaded" or len(self._servers) == 1:
            # Least-loaded: the job the policy picks for the last loaded group, to the free
            # server with the shortest line; one server: the same thing.
            order = sorted(free, key=lambda s: (s.in_flight + s.external, next(self._rr)))
            for server in order:
                loaded = server.loaded if len(self._servers) == 1 else self._last_group
                entry = self._choose(server.label, loaded)
                if entry is not None:
                    return server, entry
            return None
        best: tuple[tuple[int, int, int], _Server, _Entry] | None = None
        for server in free:
            entry = self._choose(server.label, server.loaded)
            if entry is None:
                continue
            # No swap first; then a server holding nothing (a load, but no warm model evicted
            # that another job may want); then a swap.
            if entry.group is None or entry.group == server.loaded:
                swap = 0
            else:
                swap = 1 if server.loaded is None else 2
                if swap == 2 and self._warm_elsewhere_soon(entry, server):
                    continue
            score = (swap, server.in_flight + server.external, next(self._rr))
            if best is None or score < best[0]:
                best = (score, server, entry)
        return None if best is None else (best[1], best[2])

    def _warm_elsewhere_soon(self, entry: _Entry, server: _Server) -> bool:
        """Would evicting `server`'s warm model for `entry` be a waste? Yes when another server
        has the job's model loaded and should be free before a swap here would be done: the
        job waits for that one (unless it is already late by the fairness bounds)."""
        config = self.config
        if entry.skips >= config.max_skips or entry.since <= self._clock() - config.max_wait_s:
            return False
        return any(
            other is not server and other.available and other.loaded == entry.group
            and entry.fits(other.label) and other.in_flight * self._job_s < config.swap_s
            for other in self._servers.values()
        )

    def _choose(self, server: str, loaded: str | None) -> _Entry | None:
        """The job to release next on `server` (which has `loaded`), or None if none fits."""
        config = self.config
        oldest: _Entry | None = None      # fifo's pick
        late: _Entry | None = None        # the oldest job past max_skips or max_wait_s
        lowest: int | None = None
        eligible: list[_Owner] = []       # owners in the lowest round
        too_old = self._clock() - config.max_wait_s
        for person in self._owners.values():
            head = person.head_for(server)
            if head is None:
                continue
            if oldest is None or (head.since, head.seq) < (oldest.since, oldest.seq):
                oldest = head
            if (head.skips >= config.max_skips or head.since <= too_old) and (
                late is None or (head.since, head.seq) < (late.since, late.seq)
            ):
                late = head
            if lowest is None or person.round < lowest:
                lowest, eligible = person.round, [person]
            elif person.round == lowest:
                eligible.append(person)
        if oldest is None or config.policy == "fifo":
            return oldest
        if late is not None:
            return late
        best: _Entry | None = None
        for person in eligible:
            match = person.oldest_warm(server, loaded)
            if match is not None and (best is None or (match.since, match.seq) < (best.since, best.seq)):
                best = match
        if best is not None:
            return best
        heads = [h for p in eligible if (h := p.head_for(server)) is not None]
        return min(heads, key=lambda e: (e.since, e.seq))

    def _release(self, server: _Server, entry: _Entry) -> None:
        person = self._owners[entry.owner]
        # Who was passed over: this person's older jobs, and other people's oldest jobs that
        # were in the same or an earlier round (passing a later round is fairness, not a skip).
        for older in person.first(server.label):
            if older is entry:
                break
            older.skips += 1
        for other in self._owners.values():
            if other is not person and other.round <= person.round and other.jobs:
                head = other.head()
                if (head.since, head.seq) < (entry.since, entry.seq):
                    head.skips += 1
        self._vtime = person.round
        person.round += 1
        self._running[entry.seq] = self._remove_waiting(entry)
        entry.server = server.label
        server.in_flight += 1
        self._released_at[entry.seq] = self._clock()
        if entry.group is not None:
            server.loaded = entry.group
            self._last_group = entry.group
        entry.wake.set()

    # -- positions ------------------------------------------------------------------------------
    def _position(self, entry: _Entry) -> int:
        """Jobs ahead of a waiting job (ours running included), estimated from the rounds in
        O(owners): model grouping may reorder within a round."""
        if entry.released or entry.left:
            return 0
        person = self._owners[entry.owner]
        loaded = {s.loaded for s in self._servers.values()}
        warm = entry.group is None or entry.group in loaded
        mine, before = 0, True
        for job in itertools.islice(person.jobs.values(), SCAN_LIMIT):
            if job is entry:
                before = False
                continue
            job_warm = job.group is None or job.group in loaded
            # Grouping: this person's jobs on a loaded model go first, in order.
            if (before and job_warm == warm) or (job_warm and not warm):
                mine += 1
        due = person.round + mine       # the round in which this job goes
        ahead = mine
        for other in self._owners.values():
            if other is person or not other.jobs:
                continue
            turns = due - other.round
            if (other.head().since, other.head().seq) < (person.head().since, person.head().seq):
                turns += 1
            ahead += min(len(other.jobs), max(0, turns))
        return self.in_flight + ahead

    def _changed(self) -> None:
        """Wake waiting jobs to re-read their place, at most once per refresh interval."""
        if self._tick is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return      # no loop (plain unit tests): positions are computed on demand
        self._tick = loop.call_later(self.config.position_refresh_s, self._wake_all)

    def _wake_all(self) -> None:
        self._tick = None
        for person in self._owners.values():
            for entry in person.jobs.values():
                entry.wake.set()

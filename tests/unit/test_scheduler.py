"""The studio-side dispatcher's policy with a fake clock and no ComfyUI: release order under
fifo and group, the skip and wait bounds, fairness between people, admission caps, several
servers, positions as they change, leaving while waiting."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import pytest

from backend.scheduler import QueueFull, Scheduler, SchedulerConfig, Turn
from backend.settings import Settings

GEN, EDIT, TURBO = "gen.safetensors", "edit.safetensors", "turbo.safetensors"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(policy: str = "group", **limits: float) -> tuple[Scheduler, Clock]:
    clock = Clock()
    config = SchedulerConfig(policy, position_refresh_s=0, **limits)  # type: ignore[arg-type]
    return Scheduler(config, clock=clock), clock


@dataclass
class Job:
    name: str
    turn: Turn


GROUPS = {"g": GEN, "e": EDIT, "t": TURBO, "-": None}


def enter(scheduler: Scheduler, clock: Clock, spec: str, owner: str = "") -> list[Job]:
    """`spec` like "g e g -": one job per letter (g/e/t a model group, - none), 1 s apart."""
    jobs = []
    for i, letter in enumerate(spec.split()):
        clock.now += 1
        jobs.append(Job(f"{owner}{letter}{i}", scheduler.enter(GROUPS[letter], owner=owner)))
    return jobs


def drain(jobs: list[Job]) -> list[str]:
    """Finish whatever runs, one at a time, until every job has run; the release order."""
    order: list[str] = []
    pending = list(jobs)
    while pending:
        running = [j for j in pending if j.turn.released]
        assert len(running) == 1, [j.name for j in running]
        order.append(running[0].name)
        pending.remove(running[0])
        running[0].turn.leave()
    return order


def test_fifo_releases_in_arrival_order() -> None:
    scheduler, clock = make("fifo")
    jobs = enter(scheduler, clock, "g e g e g e")
    assert [j.turn.released for j in jobs] == [True] + [False] * 5
    assert drain(jobs) == ["g0", "e1", "g2", "e3", "g4", "e5"]
    assert scheduler.in_flight == 0 and scheduler.waiting() == ()


def test_group_prefers_the_loaded_model_oldest_first() -> None:
    scheduler, clock = make("group", max_skips=10)
    jobs = enter(scheduler, clock, "g e g e g e")
    assert drain(jobs) == ["g0", "g2", "g4", "e1", "e3", "e5"]


def test_group_without_a_match_takes_the_oldest() -> None:
    scheduler, clock = make("group", max_skips=10)
    jobs = enter(scheduler, clock, "g t e t e")
    # After g0 nothing shares its model: the oldest (t1) goes, then the other turbo job.
    assert drain(jobs) == ["g0", "t1", "t3", "e2", "e4"]


def test_a_job_without_a_model_fits_anywhere() -> None:
    scheduler, clock = make("group", max_skips=10)
    jobs = enter(scheduler, clock, "g e - g")
    # Background removal (-) loads no diffusion model: it goes before the edit and the
    # generate job after it still finds its model loaded.
    assert drain(jobs) == ["g0", "-2", "g3", "e1"]


def test_no_job_is_passed_over_more_than_max_skips_times() -> None:
    scheduler, clock = make("group", max_skips=2)
    jobs = enter(scheduler, clock, "g e g g g g")
    assert drain(jobs) == ["g0", "g2", "g3", "e1", "g4", "g5"]
    assert jobs[1].turn.skips == 2


def test_max_skips_zero_is_fifo() -> None:
    scheduler, clock = make("group", max_skips=0)
    jobs = enter(scheduler, clock, "g e g e g")
    assert drain(jobs) == ["g0", "e1", "g2", "e3", "g4"]


def test_a_job_that_waited_max_wait_s_goes_next() -> None:
    scheduler, clock = make("group", max_skips=10, max_wait_s=30.0)
    jobs = enter(scheduler, clock, "g e g g")
    jobs[0].turn.leave()  # g2 shares the model: it goes, e1 was passed over once
    assert jobs[2].turn.released and not jobs[1].turn.released
    clock.now += 30.0     # e1 has now waited longer than max_wait_s
    jobs[2].turn.leave()
    assert jobs[1].turn.released and not jobs[3].turn.released


@pytest.mark.parametrize("max_skips", [0, 1, 3])
def test_random_workloads_respect_the_skip_bound_and_swap_less(max_skips: int) -> None:
    rng = random.Random(max_skips)
    for _ in range(50):
        spec = " ".join(rng.choice("gget-") for _ in range(rng.randint(2, 14)))
        orders = {}
        for policy in ("fifo", "group"):
            scheduler, clock = make(policy, max_skips=max_skips)
            orders[policy] = drain(enter(scheduler, clock, spec))
        arrival = {name: i for i, name in enumerate(orders["fifo"])}
        for rank, name in enumerate(orders["group"]):
            later_before = [n for n in orders["group"][:rank] if arrival[n] > arrival[name]]
            assert len(later_before) <= max_skips, (spec, orders["group"], name)
        assert swaps(orders["group"]) <= swaps(orders["fifo"]), spec


def swaps(order: list[str]) -> int:
    loaded, count = None, 0
    for name in order:
        letter = name.rstrip("0123456789")[-1]   # "ann" + "g" + "3": the model group
        if letter != "-":
            count += loaded is not None and letter != loaded
            loaded = letter
    return count


def test_leaving_while_waiting_frees_the_place_not_the_slot() -> None:
    scheduler, clock = make("fifo")
    jobs = enter(scheduler, clock, "g e g")
    jobs[1].turn.leave()
    assert scheduler.in_flight == 1 and [w.position for w in scheduler.waiting()] == [1]
    assert scheduler.waiting_count == 1
    assert not jobs[2].turn.released
    jobs[1].turn.leave()  # idempotent
    jobs[0].turn.leave()
    assert jobs[2].turn.released and not jobs[1].turn.released
    jobs[2].turn.leave()
    assert scheduler.in_flight == 0 and scheduler.waiting() == ()


def test_an_earlier_since_keeps_an_earlier_place() -> None:
    scheduler, clock = make("fifo")
    first = scheduler.enter(GEN)
    clock.now += 5
    late = scheduler.enter(EDIT)
    retry = scheduler.enter(GEN, since=clock.now - 10)   # e.g. an out-of-memory retry
    first.leave()
    assert retry.released and not late.released


def test_depth_two_keeps_one_pending() -> None:
    scheduler = Scheduler(SchedulerConfig("fifo", depth=2, position_refresh_s=0))
    a, b, c = scheduler.enter(GEN), scheduler.enter(EDIT), scheduler.enter(GEN)
    assert (a.released, b.released, c.released) == (True, True, False)
    assert [w.position for w in scheduler.waiting()] == [2]


async def positions(turn: Turn, seen: list[int]) -> None:
    async for position in turn.wait():
        seen.append(position)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_wait_yields_positions_as_they_change_then_returns() -> None:
    scheduler, clock = make("group", max_skips=10)
    gen, edit = enter(scheduler, clock, "g e")
    seen: dict[str, list[int]] = {"edit": [], "gen2": []}
    edit_task = asyncio.create_task(positions(edit.turn, seen["edit"]))
    await settle()
    assert seen["edit"] == [1]
    gen2 = enter(scheduler, clock, "g")[0]           # shares the loaded model: goes first
    gen2_task = asyncio.create_task(positions(gen2.turn, seen["gen2"]))
    await settle()
    assert seen == {"edit": [1, 2], "gen2": [1]}
    assert [(w.position, w.group) for w in scheduler.waiting()] == [(1, GEN), (2, EDIT)]
    assert edit.turn.position() == 2 and gen2.turn.position() == 1
    gen.turn.leave()
    await settle()
    assert gen2_task.done() and not edit_task.done()
    assert seen["edit"] == [1, 2, 1]
    gen2.turn.leave()
    await asyncio.wait_for(edit_task, 1)
    assert seen["edit"] == [1, 2, 1]   # released: no position 0 from the studio's queue


async def test_a_released_job_waits_for_nothing() -> None:
    scheduler, _ = make("fifo")
    turn = scheduler.enter(GEN)
    assert [p async for p in turn.wait()] == []


async def test_cancelling_a_waiting_consumer_lets_it_leave() -> None:
    scheduler, clock = make("fifo")
    running, waiting, last = enter(scheduler, clock, "g e g")

    async def job(turn: Turn) -> None:
        try:
            async for _ in turn.wait():
                pass
        finally:
            turn.leave()

    task = asyncio.create_task(job(waiting.turn))
    await settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [w.position for w in scheduler.waiting()] == [1]
    running.turn.leave()
    assert last.turn.released


def test_config_from_settings_and_bad_values() -> None:
    config = SchedulerConfig.from_settings(
        Settings(scheduling="group", max_queue=7, max_queue_per_person=2, routing="least-loaded")
    )
    assert (config.policy, config.max_skips, config.depth) == ("group", 3, 1)
    assert (config.max_queue, config.max_per_owner, config.routing) == (7, 2, "least-loaded")
    with pytest.raises(ValueError, match="STUDIO_SCHEDULING"):
        SchedulerConfig("groups")
    with pytest.raises(ValueError, match="STUDIO_ROUTING"):
        SchedulerConfig(routing="random")
    with pytest.raises(ValueError):
        SchedulerConfig("group", max_skips=-1)
    with pytest.raises(ValueError):
        SchedulerConfig(max_queue=0)


# --- admission ------------------------------------------------------------------------------


def test_the_studio_line_is_bounded_and_says_when_to_retry() -> None:
    scheduler, clock = make("fifo", max_queue=3, max_per_owner=10)
    jobs = [scheduler.enter(GEN, owner=f"p{i}") for i in range(4)]   # 1 runs, 3 wait
    with pytest.raises(QueueFull) as refused:
        scheduler.enter(GEN, owner="late")
    assert refused.value.scope == "studio" and refused.value.retry_after_s >= 1
    assert "busy" in refused.value.message
    jobs[0].leave()                                      # one released: a place is free
    scheduler.enter(GEN, owner="late")


def test_one_person_cannot_fill_the_line() -> None:
    scheduler, _ = make("fifo", max_queue=100, max_per_owner=2)
    scheduler.enter(GEN, owner="ann")                     # runs
    scheduler.enter(GEN, owner="ann")
    scheduler.enter(GEN, owner="ann")
    with pytest.raises(QueueFull) as refused:
        scheduler.enter(GEN, owner="ann")
    assert refused.value.scope == "owner" and "You already have 2 jobs waiting" in str(refused.value)
    scheduler.enter(GEN, owner="bob")                     # others still get in


def test_a_refused_job_leaves_no_trace() -> None:
    scheduler, _ = make("fifo", max_queue=1)
    scheduler.enter(GEN, owner="a")
    scheduler.enter(GEN, owner="b")
    with pytest.raises(QueueFull):
        scheduler.enter(GEN, owner="c")
    assert scheduler.waiting_count == 1 and [w.owner for w in scheduler.waiting()] == ["b"]


# --- fairness between people ---------------------------------------------------------------


@pytest.mark.parametrize("single", ["g", "e"])
def test_a_batch_of_four_does_not_hold_another_person_behind_all_four(single: str) -> None:
    scheduler, clock = make("group")
    batch = enter(scheduler, clock, "g g g g", owner="ann")   # ann's first runs at once
    other = enter(scheduler, clock, single, owner="bob")
    assert drain(batch + other) == ["anng0", f"bob{single}0", "anng1", "anng2", "anng3"]


def test_people_take_turns_and_models_group_within_a_round() -> None:
    scheduler, clock = make("group", max_skips=10)
    jobs = []
    for person, spec in (("a", "g e g"), ("b", "e g e"), ("c", "g e g"), ("d", "e g e")):
        jobs += enter(scheduler, clock, spec, owner=person)
    order = drain(jobs)
    # Every round serves each person once; inside a round the loaded model goes first.
    rounds = [sorted(name[0] for name in order[i:i + 4]) for i in (0, 4, 8)]
    assert rounds == [["a", "b", "c", "d"]] * 3
    assert swaps(order) <= 4 < swaps(
        drain(enter(*make("fifo"), "g e g e g e g e g e g e"))
    )


def test_a_newcomer_joins_the_round_being_served_without_credit_for_absence() -> None:
    scheduler, clock = make("group")
    first = enter(scheduler, clock, "g", owner="ann")[0]
    first.turn.leave()                                   # ann was served once, now idle
    batch = enter(scheduler, clock, "g g g", owner="bob")
    back = enter(scheduler, clock, "g g", owner="ann")
    # bob and ann each had one turn: they alternate, oldest first.
    assert drain(batch + back) == ["bobg0", "bobg1", "anng0", "bobg2", "anng1"]


def test_random_rooms_respect_the_skip_bound_within_rounds() -> None:
    rng = random.Random(7)
    for _ in range(40):
        scheduler, clock = make("group", max_skips=2, max_per_owner=50, max_queue=500)
        jobs = []
        for person in "abcd"[: rng.randint(1, 4)]:
            spec = " ".join(rng.choice("gget-") for _ in range(rng.randint(1, 6)))
            jobs += enter(scheduler, clock, spec, owner=person)
        order = drain(jobs)
        assert sorted(order) == sorted(j.name for j in jobs)
        assert all(j.turn.skips <= 2 for j in jobs)


# --- several servers -----------------------------------------------------------------------


def servers(routing: str, *labels: str) -> tuple[Scheduler, Clock]:
    clock = Clock()
    config = SchedulerConfig("group", routing=routing, position_refresh_s=0)
    return Scheduler(config, servers=labels, clock=clock), clock


def test_each_server_takes_one_job_and_a_free_one_takes_the_next() -> None:
    scheduler, _ = servers("affinity", "a", "b")
    one, two, three = (scheduler.enter(GEN, owner=p) for p in "xyz")
    assert (one.server, two.server, three.released) == ("a", "b", False)
    assert scheduler.in_flight == 2
    two.leave()
    assert three.server == "b"


def test_affinity_sends_a_job_where_its_model_is_loaded() -> None:
    scheduler, _ = servers("affinity", "a", "b")
    warm_gen, warm_edit = scheduler.enter(GEN, owner="x"), scheduler.enter(EDIT, owner="y")
    assert (warm_gen.server, warm_edit.server) == ("a", "b")
    warm_gen.leave()
    warm_edit.leave()
    edit, gen = scheduler.enter(EDIT, owner="p"), scheduler.enter(GEN, owner="q")
    assert (edit.server, gen.server) == ("b", "a")


def test_affinity_waits_for_the_warm_server_rather_than_evict_another_warm_model() -> None:
    """Failed before: a free server evicted its warm model for the other server's kind of job
    whenever fairness picked that job (test_servers' 'each model goes where it is warm' raced)."""
    scheduler, clock = servers("affinity", "a", "b")
    warm_gen, warm_edit = scheduler.enter(GEN, owner="x"), scheduler.enter(EDIT, owner="y")
    clock.now += 1                                   # jobs take 1 s: far less than a swap
    warm_gen.leave()
    warm_edit.leave()
    busy = scheduler.enter(EDIT, owner="p")          # b, where the edit model is warm
    waiting = scheduler.enter(EDIT, owner="q")       # a is free but holds the generate model
    assert busy.server == "b" and not waiting.released
    gen = scheduler.enter(GEN, owner="r")            # a still takes its own kind of job
    assert gen.server == "a"
    busy.leave()
    assert waiting.server == "b"


def test_affinity_swaps_when_the_warm_server_is_far_off_or_the_job_is_late() -> None:
    scheduler, clock = servers("affinity", "a", "b")
    warm_gen, warm_edit = scheduler.enter(GEN, owner="x"), scheduler.enter(EDIT, owner="y")
    clock.now += 60                                  # jobs take a minute: a swap is cheaper
    warm_gen.leave()
    warm_edit.leave()
    busy = scheduler.enter(EDIT, owner="p")
    assert scheduler.enter(EDIT, owner="q").server == "a"
    busy.leave()
    scheduler, clock = servers("affinity", "a", "b")
    warm_gen, warm_edit = scheduler.enter(GEN, owner="x"), scheduler.enter(EDIT, owner="y")
    clock.now += 1
    warm_gen.leave()
    warm_edit.leave()
    busy = scheduler.enter(EDIT, owner="p")
    waiting = scheduler.enter(EDIT, owner="q")
    assert not waiting.released
    clock.now += scheduler.config.max_wait_s + 1     # late: fairness bounds win over affinity
    scheduler.enter(GEN, owner="r")                  # any event re-reads the line
    assert waiting.server == "a"


def test_least_loaded_ignores_models_and_prefers_the_shorter_line() -> None:
    scheduler, _ = servers("least-loaded", "a", "b")
    scheduler.set_external_load("a", 3)
    job = scheduler.enter(EDIT, owner="p")
    assert job.server == "b"


def test_a_job_only_goes_where_it_can_run() -> None:
    scheduler, _ = servers("affinity", "a", "b")
    busy = scheduler.enter(GEN, owner="x")              # takes a
    region = scheduler.enter(EDIT, owner="y", servers=frozenset({"a"}))
    assert busy.server == "a" and not region.released   # b is free but lacks the packs
    busy.leave()
    assert region.server == "a"


def test_an_unavailable_server_takes_nothing_and_forgets_its_model() -> None:
    scheduler, _ = servers("affinity", "a", "b")
    scheduler.set_available("a", False)
    first, second = scheduler.enter(GEN, owner="x"), scheduler.enter(GEN, owner="y")
    assert (first.server, second.released) == ("b", False)
    scheduler.set_available("a", True)
    assert second.server == "a" and scheduler.loaded("a") == GEN
    scheduler.forget_loaded("a")
    assert scheduler.loaded("a") is None


async def test_positions_are_refreshed_on_a_throttled_tick() -> None:
    clock = Clock()
    config = SchedulerConfig("fifo", position_refresh_s=0.05)
    scheduler = Scheduler(config, clock=clock)
    scheduler.enter(GEN, owner="a")
    late = scheduler.enter(GEN, owner="b")
    seen: list[int] = []
    task = asyncio.create_task(positions(late, seen))
    await settle()
    assert seen == [1]
    for i in range(20):
        scheduler.enter(GEN, owner=f"c{i}").leave()      # churn: no wake-up per change
    await settle()
    assert seen == [1]
    await asyncio.sleep(0.1)
    assert seen == [1] and not task.done()
    task.cancel()

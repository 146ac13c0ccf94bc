"""Retention: oldest unstarred first, by age and by size, files and rows together."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from backend.library import ItemQuery, Library, LibraryConfig
from backend.library.config import DAY_S
from tests.library.conftest import Clock, new_item


async def test_prune_by_age_keeps_starred_and_recent(make_library: Callable[..., Library],
                                                     clock: Clock) -> None:
    lib = make_library(max_age_s=10 * DAY_S)
    await lib.open()
    old = await lib.save(new_item(prompt="old"))
    old_starred = await lib.save(new_item(prompt="old but starred"))
    await lib.set_star("alice", old_starred.id, True)
    clock.now += 9 * DAY_S
    recent = await lib.save(new_item(prompt="recent"))
    clock.now += 2 * DAY_S          # `old` is now 11 days old, `recent` 2

    report = await lib.prune()
    assert report.removed == (old.id,) and report.by_age == 1 and report.by_size == 0
    assert report.freed_bytes == old.size_bytes
    assert not old.result.parent.exists()
    left = {i.id for i in (await lib.page("alice", ItemQuery())).items}
    assert left == {old_starred.id, recent.id}
    assert (await lib.prune()).removed == ()
    await lib.close()


async def test_prune_by_size_removes_oldest_unstarred_first(
        make_library: Callable[..., Library]) -> None:
    lib = make_library()
    await lib.open()
    items = [await lib.save(new_item(prompt=f"n{n}", size=(128, 128))) for n in range(6)]
    await lib.set_star("alice", items[0].id, True)
    await lib.close()
    kept = sum(i.size_bytes for i in items) + lib.db_path.stat().st_size  # files + database
    budget = kept - items[1].size_bytes - items[2].size_bytes // 2        # two must go

    lib = make_library(max_bytes=budget)
    report = await lib.open()      # retention runs at open
    assert report.pruned.removed == (items[1].id, items[2].id)
    assert report.pruned.by_size == 2 and not report.pruned.over_budget
    assert sum(i.size_bytes for i in (await lib.page("alice", ItemQuery())).items) + \
        lib.db_path.stat().st_size <= budget
    assert await lib.get("alice", items[0].id) is not None        # starred: kept
    assert report.items == 4
    await lib.close()


async def test_only_starred_left_is_reported_over_budget(
        make_library: Callable[..., Library]) -> None:
    lib = make_library()
    await lib.open()
    item = await lib.save(new_item())
    await lib.set_star("alice", item.id, True)
    await lib.close()
    lib = make_library(max_bytes=1)
    await lib.open()
    report = await lib.prune()
    assert report.removed == () and report.over_budget
    assert await lib.get("alice", item.id) is not None
    await lib.close()


async def test_saves_trigger_retention(make_library: Callable[..., Library]) -> None:
    lib = make_library(max_bytes=1_000_000)
    await lib.open()
    first = await lib.save(new_item(prompt="first"))
    for n in range(40):
        await lib.save(new_item(prompt=f"more {n}", size=(160, 160), noisy=True))
        await asyncio.sleep(0)

    async def kept_bytes() -> int:
        page = await lib.page("alice", ItemQuery(limit=500))
        return sum(i.size_bytes for i in page.items) + lib.db_path.stat().st_size

    for _ in range(200):        # the prune runs in the background after a save
        if await kept_bytes() <= 1_000_000:
            break
        await asyncio.sleep(0.01)
    assert await kept_bytes() <= 1_000_000
    assert await lib.get("alice", first.id) is None                # oldest went first
    assert 0 < ((await lib.page("alice", ItemQuery())).total or 0) < 41
    await lib.close()


async def test_off_mode_is_a_scratch_library_removed_on_close(clock: Clock) -> None:
    lib = Library(LibraryConfig(mode="off"), clock=clock)
    await lib.open()
    assert lib.config.effective_max_age_s == DAY_S
    item = await lib.save(new_item())
    assert item.result.is_file() and lib.owns_file("alice", item.result) == item
    folder = lib.data_dir
    await lib.close()
    assert not folder.exists()

"""Schema creation from an empty folder, idempotent re-open, refusing a newer schema, two
processes opening at once."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from backend.library import ItemQuery, Library, LibraryError
from backend.library.schema import MIGRATIONS, SCHEMA_VERSION, migrate
from tests.library.conftest import new_item


async def test_open_creates_folder_and_schema(make_library: Callable[..., Library],
                                              tmp_path: Path) -> None:
    data = tmp_path / "deep" / "data"
    lib = make_library(data)
    report = await lib.open()
    await lib.close()
    assert data.is_dir() and (data / "library.db").is_file()
    assert (report.migrated_from, report.schema_version) == (0, SCHEMA_VERSION)
    assert report.integrity == "ok" and report.clean and report.items == 0
    conn = sqlite3.connect(data / "library.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert {"items", "items_fts", "totals", "items_owner_created", "items_owner_mode",
            "items_owner_starred", "items_parent"} <= tables
    conn.close()


async def test_reopen_is_idempotent_and_keeps_items(make_library: Callable[..., Library]) -> None:
    lib = make_library()
    await lib.open()
    item = await lib.save(new_item(prompt="kept across restarts"))
    await lib.close()
    for _ in range(2):
        lib = make_library()
        report = await lib.open()
        assert (report.migrated_from, report.schema_version) == (SCHEMA_VERSION, SCHEMA_VERSION)
        assert report.clean and report.items == 1
        page = await lib.page("alice", ItemQuery(text="restarts"))
        assert [i.id for i in page.items] == [item.id]
        await lib.close()


def test_migrate_twice_applies_nothing_the_second_time(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    assert migrate(conn) == (0, SCHEMA_VERSION)
    assert migrate(conn) == (SCHEMA_VERSION, SCHEMA_VERSION)
    conn.close()


async def test_newer_schema_is_refused(make_library: Callable[..., Library],
                                       tmp_path: Path) -> None:
    data = tmp_path / "data"
    lib = make_library(data)
    await lib.open()
    await lib.close()
    conn = sqlite3.connect(data / "library.db")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    lib = make_library(data)
    with pytest.raises(LibraryError, match="newer Banana Studio"):
        await lib.open()
    await lib.close()


async def test_two_libraries_on_one_folder_at_once(make_library: Callable[..., Library]) -> None:
    """The server and a CLI import open the same folder: both migrate safely, both see all."""
    a, b = make_library(), make_library()
    await asyncio.gather(a.open(), b.open())
    x = await a.save(new_item(prompt="from a"))
    y = await b.save(new_item(prompt="from b"))
    for lib in (a, b):
        assert {i.id for i in (await lib.page("alice", ItemQuery())).items} == {x.id, y.id}
    await a.close()
    await b.close()

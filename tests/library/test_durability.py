"""Durability off the job's path (issue 11: saving adds ≤ 10 ms a job): a save returns once its
files are written, renamed into place and its row committed; the fsyncs follow in the
background, and the start-up check verifies what was saved but maybe not yet on the disk
(a power cut, simulated here by damaging files of items still listed `unsynced`)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backend.library import InputFile, Library, db, files, record
from backend.library.files import LOST_DIR
from tests.library.conftest import new_item


def unsynced(data: Path) -> list[str]:
    conn = sqlite3.connect(data / files.DB_NAME)
    try:
        return [str(r[0]) for r in conn.execute("SELECT id FROM unsynced")]
    finally:
        conn.close()


@pytest.fixture
def held_sync(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """The background sync waits for this event (so a test sees the moment before it)."""
    release = threading.Event()
    real = files.sync_item_folder

    def waiting(folder: Path) -> bool:
        release.wait(10)
        return real(folder)

    monkeypatch.setattr(files, "sync_item_folder", waiting)
    yield release
    release.set()


async def test_a_save_returns_before_its_fsync_and_close_waits_for_it(
        make_library: Callable[..., Library], tmp_path: Path,
        held_sync: threading.Event) -> None:
    """Before: every file and folder was fsynced before the save returned (~5–80 ms)."""
    data = tmp_path / "data"
    lib = make_library(data)
    await lib.open()
    item = await lib.save(new_item())          # returns although the sync is held
    assert item.result.exists() and unsynced(data) == [item.id]
    held_sync.set()
    await lib.close()                          # waits for the sync and its bookkeeping
    assert unsynced(data) == []


async def test_the_start_up_check_keeps_whole_unsynced_items(
        make_library: Callable[..., Library], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """After a kill the OS still had every file: the items are verified and kept."""
    monkeypatch.setattr(db, "mark_synced", lambda conn, ids: None)    # "killed" before
    data = tmp_path / "data"
    lib = make_library(data)
    await lib.open()
    saved = [await lib.save(new_item(prompt=f"item {n}", mask=True)) for n in range(3)]
    await lib.close()
    monkeypatch.undo()
    assert sorted(unsynced(data)) == sorted(i.id for i in saved)
    lib = make_library(data)
    report = await lib.open()
    assert report.verified == 3 and report.items == 3 and not report.rows_removed
    assert unsynced(data) == []
    await lib.close()


@pytest.mark.parametrize("damage", ["short_png", "zeroed_input", "empty_manifest"])
async def test_an_unsynced_item_a_power_cut_damaged_is_never_kept(
        make_library: Callable[..., Library], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    monkeypatch.setattr(db, "mark_synced", lambda conn, ids: None)
    data = tmp_path / "data"
    lib = make_library(data)
    await lib.open()
    kept = await lib.save(new_item(prompt="whole"))
    hit = await lib.save(new_item(prompt="hit", inputs=(InputFile("image", b"x" * 900, ".png"),)))
    await lib.close()
    monkeypatch.undo()
    folder = hit.result.parent
    if damage == "short_png":       # the OS had written part of it
        blob = hit.result.read_bytes()
        hit.result.write_bytes(blob[: len(blob) // 2])
    elif damage == "zeroed_input":  # right size, never written (some file systems)
        path = hit.inputs[0].path
        path.write_bytes(bytes(path.stat().st_size))
    else:
        (folder / record.MANIFEST_NAME).write_bytes(b"")

    lib = make_library(data)
    report = await lib.open()
    assert report.rows_removed == (hit.id,) and report.verified == 1
    assert await lib.get("alice", hit.id) is None and await lib.get("alice", kept.id)
    assert not folder.exists() and any((data / LOST_DIR).iterdir())
    await lib.close()


async def test_a_damaged_orphan_folder_is_not_adopted(
        make_library: Callable[..., Library], tmp_path: Path) -> None:
    """A folder renamed into place whose row never committed, cut short by a power cut."""
    data = tmp_path / "data"
    lib = make_library(data)
    await lib.open()
    await lib.close()
    created = 1_780_000_100.0
    item_id = record.new_id()
    folder = files.item_folder(lib.data_dir, item_id, created)
    encoded = record.encode_new_item(new_item(prompt="orphan"), item_id, created, folder)
    files.write_item_folder(folder, encoded.blobs)
    encoded.item.result.write_bytes(encoded.item.result.read_bytes()[:100])

    lib = make_library(data)
    report = await lib.open()
    assert report.adopted == () and len(report.set_aside) == 1 and report.items == 0
    await lib.close()

"""The start-up check, one crash point at a time (test_crash.py kills real processes)."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

from backend.library import InputFile, ItemQuery, Library, files, record
from tests.library.conftest import new_item

DEAD_PID = 99_999_999      # above any pid_max: never a live process


def write_uncommitted(lib: Library, owner: str = "alice", created: float = 1_780_000_100.0,
                      **kw: object) -> record.EncodedItem:
    """What a save leaves when the process dies after the rename, before the commit."""
    item_id = record.new_id()
    folder = files.item_folder(lib.data_dir, item_id, created)
    encoded = record.encode_new_item(new_item(owner, **kw), item_id, created, folder)  # type: ignore[arg-type]
    files.write_item_folder(folder, encoded.blobs)
    return encoded


async def reopen(make_library: Callable[..., Library], data: Path) -> tuple[Library, object]:
    lib = make_library(data)
    report = await lib.open()
    return lib, report


async def test_a_complete_folder_without_row_is_adopted(make_library: Callable[..., Library],
                                                        tmp_path: Path) -> None:
    data = tmp_path / "data"
    lib = make_library(data)
    await lib.open()
    parent = await lib.save(new_item(prompt="parent"))
    await lib.close()
    encoded = write_uncommitted(lib, prompt="saved just before the crash", mask=True,
                                parent_id=parent.id,
                                inputs=(InputFile("image", b"sent", ".png"),))

    lib = make_library(data)
    report = await lib.open()
    assert report.adopted == (encoded.item.id,) and report.items == 2
    got = await lib.get("alice", encoded.item.id)
    assert got is not None and got == encoded.item
    assert got.parent_id == parent.id
    assert (await lib.page("alice", ItemQuery(text="crash"))).total == 1
    await lib.close()
    lib = make_library(data)
    assert (await lib.open()).clean
    await lib.close()


async def test_unfinished_saves_of_dead_processes_are_removed(
        make_library: Callable[..., Library], tmp_path: Path) -> None:
    data = tmp_path / "data"
    month = data / "library" / "2026-05"
    dead = month / f".partial-{DEAD_PID}-abcdefabcdef"
    live = month / ".partial-1-abcdefabcdeg"              # pid 1 is alive: an import at work
    for folder in (dead, live):
        folder.mkdir(parents=True)
        (folder / "banana-generate.png").write_bytes(b"half a png")
    lib = make_library(data)
    report = await lib.open()
    await lib.close()
    assert report.partial_removed == 1 and report.items == 0
    assert not dead.exists() and live.exists()


async def test_interrupted_delete_is_finished(make_library: Callable[..., Library],
                                              tmp_path: Path) -> None:
    data = tmp_path / "data"
    lib = make_library(data)
    await lib.open()
    keep = await lib.save(new_item(prompt="keep"))
    gone = await lib.save(new_item(prompt="being deleted"))
    await lib.close()
    folder = gone.result.parent       # the delete renamed it, then the process died
    os.rename(folder, folder.with_name(f".trash-{DEAD_PID}-{gone.id}"))

    lib = make_library(data)
    report = await lib.open()
    assert report.deletes_finished == (gone.id,)
    assert await lib.get("alice", gone.id) is None
    assert await lib.get("alice", keep.id) is not None
    assert not any(p.name.startswith(".trash") for p in folder.parent.iterdir())
    await lib.close()


async def test_folders_that_make_no_sense_go_to_lost_and_found(
        make_library: Callable[..., Library], tmp_path: Path) -> None:
    data = tmp_path / "data"
    lib = make_library(data)
    await lib.open()
    await lib.close()
    no_manifest = write_uncommitted(lib, created=1_780_000_000.0)
    (no_manifest.folder / "item.json").unlink()
    corrupt = write_uncommitted(lib, created=1_780_000_001.0)
    (corrupt.folder / "item.json").write_text("{not json")
    missing_file = write_uncommitted(lib, created=1_780_000_002.0, mask=True)
    (missing_file.folder / "mask.png").unlink()

    lib = make_library(data)
    report = await lib.open()
    await lib.close()
    assert report.adopted == () and report.items == 0 and len(report.set_aside) == 3
    lost = {p.name for p in (data / "lost+found").iterdir()}
    assert {f"2026-05-{e.item.id}" for e in (no_manifest, corrupt, missing_file)} == lost
    assert (data / "lost+found" / f"2026-05-{corrupt.item.id}" / corrupt.item.result.name).is_file()


async def test_rows_without_their_png_are_removed(make_library: Callable[..., Library],
                                                  tmp_path: Path) -> None:
    data = tmp_path / "data"
    lib = make_library(data)
    await lib.open()
    png_gone = await lib.save(new_item(prompt="png deleted by hand"))
    folder_gone = await lib.save(new_item(prompt="folder deleted by hand"))
    kept = await lib.save(new_item(prompt="fine"))
    await lib.close()
    png_gone.result.unlink()
    shutil.rmtree(folder_gone.result.parent)

    lib = make_library(data)
    report = await lib.open()
    assert set(report.rows_removed) == {png_gone.id, folder_gone.id}
    assert report.items == 1 and await lib.get("alice", kept.id) is not None
    assert (await lib.page("alice", ItemQuery(text="deleted"))).items == ()   # FTS too
    await lib.close()
    conn = sqlite3.connect(data / "library.db")
    assert conn.execute("SELECT items FROM totals").fetchone()[0] == 1
    conn.close()


async def test_missing_thumbnail_is_rebuilt_and_missing_input_dropped(
        make_library: Callable[..., Library], tmp_path: Path) -> None:
    data = tmp_path / "data"
    lib = make_library(data)
    await lib.open()
    item = await lib.save(new_item(mask=True, inputs=(InputFile("image", b"x" * 1000, ".png"),)))
    await lib.close()
    item.thumb.unlink()
    item.inputs[0].path.unlink()

    lib = make_library(data)
    report = await lib.open()
    assert report.thumbs_rebuilt == (item.id,) and report.files_missing == (item.id,)
    got = await lib.get("alice", item.id)
    assert got is not None and got.thumb.is_file() and got.inputs == ()
    assert got.extras == item.extras
    assert got.size_bytes == sum(p.stat().st_size for p in got.files)
    await lib.close()

"""A full disk or a read-only folder: save raises LibrarySaveError with a sentence, leaves no
partial file and no row; the library keeps working once the disk has room again."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.library import (
    InputFile,
    ItemQuery,
    Library,
    LibraryConfig,
    LibraryError,
    LibrarySaveError,
    db,
    files,
)
from tests.library.conftest import new_item

DISK_FULL = "The result was not saved to the library: the disk is full."


async def assert_nothing_kept(lib: Library) -> None:
    """No file at all under data/library (at most an empty month folder), no row."""
    root = lib.data_dir / files.ITEMS_DIR
    for path in root.rglob("*") if root.exists() else ():
        assert path.is_dir() and path.parent == root and not any(path.iterdir()), path
    assert (await lib.page("alice", ItemQuery())).total == 0
    assert await lib.size_bytes() < 1024 * 1024     # only the database


async def test_disk_full_while_writing_a_file(library: Library,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    real = files.write_file
    calls = 0

    def full_disk(path: Path, data: bytes) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:      # the input, after the PNG and the thumbnail went through
            with open(path, "xb") as f:
                f.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(files, "write_file", full_disk)
    with pytest.raises(LibrarySaveError) as caught:
        await library.save(new_item(inputs=(InputFile("image", b"x" * 5000, ".png"),)))
    assert caught.value.message == DISK_FULL
    assert str(caught.value) == DISK_FULL
    await assert_nothing_kept(library)

    monkeypatch.setattr(files, "write_file", real)         # room again
    item = await library.save(new_item())
    assert all(p.is_file() for p in item.files)


async def test_disk_full_while_committing_the_row(library: Library,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args: object, **kw: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(db, "insert_item", full)
    with pytest.raises(LibrarySaveError) as caught:
        await library.save(new_item())
    assert caught.value.message == DISK_FULL
    await assert_nothing_kept(library)


async def test_read_only_file_system(library: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    def read_only(path: Path, data: bytes) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(files, "write_file", read_only)
    with pytest.raises(LibrarySaveError) as caught:
        await library.save(new_item())
    assert caught.value.message == (
        f"The result was not saved to the library: the data folder {library.data_dir} "
        "is read-only.")
    await assert_nothing_kept(library)


@contextlib.contextmanager
def unprivileged() -> Iterator[None]:
    """File permissions apply (root ignores them): become `nobody` for the block."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


def lock_down(root: Path) -> None:
    """Every folder from root down: read and enter, no writing."""
    for path in [root, *root.rglob("*")]:
        if path.is_dir():
            path.chmod(0o555)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder `nobody` can reach (pytest's tmp_path is private to its user)."""
    path = Path(tempfile.mkdtemp(prefix="banana-ro-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for p in path.rglob("*"):
            if p.is_dir():
                p.chmod(0o755)
        shutil.rmtree(path)


async def test_read_only_data_folder_for_real(open_dir: Path) -> None:
    lib = Library(LibraryConfig(data_dir=open_dir / "data"))
    await lib.open()
    try:
        await lib.save(new_item(prompt="before"))       # a month folder exists now
        lock_down(open_dir / "data")
        with unprivileged(), pytest.raises(LibrarySaveError) as caught:
            await lib.save(new_item(prompt="after"))
        assert caught.value.message.startswith("The result was not saved to the library: ")
        assert "read-only" in caught.value.message
        assert (await lib.page("alice", ItemQuery())).total == 1
        assert not list((open_dir / "data" / "library").rglob(".partial-*"))
    finally:
        await lib.close()


async def test_open_in_a_read_only_place_is_a_library_error(open_dir: Path) -> None:
    lock_down(open_dir)
    lib = Library(LibraryConfig(data_dir=open_dir / "data"))
    with unprivileged(), pytest.raises(LibraryError) as caught:
        await lib.open()
    await lib.close()
    assert "read-only" in caught.value.message
    assert caught.value.message.startswith("The library could not open at ")


async def test_a_failed_delete_keeps_the_item_whole(library: Library,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    item = await library.save(new_item())

    def broken(*args: object, **kw: object) -> int:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(db, "delete_rows", broken)
    with pytest.raises(LibraryError) as caught:
        await library.delete("alice", item.id)
    assert caught.value.message == "The item was not deleted: the disk is full."
    got = await library.get("alice", item.id)
    assert got is not None and all(p.is_file() for p in got.files)

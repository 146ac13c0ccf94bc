"""The data folder on disk: where an item's files go, and writing them so that a crash at
any moment leaves either a complete item folder or something the start-up check recognises.

    data/library.db (+ -wal, -shm)      the index (SQLite, WAL)
    data/library/2026-05/<id>/          one folder per item: result PNG, thumb.webp, inputs,
                                        extras (mask.png…), item.json (the row, written last)
    data/library/2026-05/.partial-<pid>-<id>/   a save in progress (renamed when complete)
    data/library/2026-05/.trash-<pid>-<id>/     a delete in progress
    data/lost+found/                    folders the start-up check could not make sense of

A save writes every file into `.partial-…`, renames the folder to its final name (atomic),
then the row is committed; the fsyncs (files, folder, month folder) follow off the job's path
(`sync_item_folder`, run by the library's sync thread). A killed process loses nothing the OS
was handed; a power cut before the sync is what the start-up check's verification of
unsynced items covers (docs/library.md). A delete renames the folder to `.trash-…`, commits,
then removes it.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

DB_NAME = "library.db"
ITEMS_DIR = "library"
LOST_DIR = "lost+found"
PARTIAL_PREFIX = ".partial-"
TRASH_PREFIX = ".trash-"

_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_READ_ONLY = {errno.EROFS, errno.EACCES, errno.EPERM}


def month_of(created: float) -> str:
    return time.strftime("%Y-%m", time.gmtime(created))


def item_folder(data_dir: Path, item_id: str, created: float) -> Path:
    return data_dir / ITEMS_DIR / month_of(created) / item_id


def write_file(path: Path, data: bytes) -> None:
    """A new file, handed to the OS (not yet flushed to the disk: see sync_files)."""
    with open(path, "xb") as f:
        f.write(data)


def sync_files(paths: Iterable[Path]) -> None:
    """Flushes files to the disk. All written first, then all synced: the disk works on
    them together (measured: ~20% less wait than write+fsync one by one)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_item_folder(folder: Path, blobs: Iterable[tuple[str, bytes]]) -> None:
    """Writes the files, then makes the folder appear under its final name in one step.
    On any error nothing is left behind, and the error is raised. Nothing is fsynced here
    (the job waits for this): `sync_item_folder` does it afterwards."""
    month = folder.parent
    if not month.is_dir():
        month.mkdir(parents=True, exist_ok=True)
        fsync_dir(month.parent)     # once a month
    partial = month / f"{PARTIAL_PREFIX}{os.getpid()}-{folder.name}"
    partial.mkdir()
    try:
        for name, data in blobs:
            write_file(partial / name, data)
        if folder.exists():   # rename() would replace an empty folder silently
            raise FileExistsError(errno.EEXIST, "item folder exists", str(folder))
        os.rename(partial, folder)
    except BaseException:
        remove_tree(partial)
        raise


def sync_item_folder(folder: Path) -> bool:
    """Flushes a saved item to the disk: its files, the folder, and the month folder's entry
    for it. False when the folder is gone (deleted meanwhile): nothing to sync."""
    try:
        with os.scandir(folder) as entries:
            paths = [Path(e.path) for e in entries if e.is_file(follow_symlinks=False)]
        sync_files(paths)
        fsync_dir(folder)
    except FileNotFoundError:
        return False
    fsync_dir(folder.parent)
    return True


def replace_file(path: Path, data: bytes) -> None:
    """Writes or replaces one file atomically (a rebuilt thumbnail)."""
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        tmp.unlink(missing_ok=True)
        write_file(tmp, data)
        sync_files([tmp])
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def trash_folder(folder: Path) -> Path | None:
    """Renames an item folder out of the way (the first step of a delete); None when it
    does not exist."""
    trash = folder.with_name(f"{TRASH_PREFIX}{os.getpid()}-{folder.name}")
    try:
        os.rename(folder, trash)
    except FileNotFoundError:
        return None
    return trash


def remove_tree(path: Path) -> None:
    def complain(function: object, name: str, exc_info: object) -> None:
        log.warning("could not remove %s: %s", name, exc_info)

    if path.exists():
        shutil.rmtree(path, onerror=complain)   # onexc only from 3.12


@dataclass
class Scan:
    """What is on disk under data/library: final item folders (as paths relative to the data
    folder, "library/2026-05/<id>") and their file names, and the leftovers of saves and
    deletes that a dead process did not finish. Strings, not Paths: 10,000 folders."""

    folders: dict[str, frozenset[str]] = field(default_factory=dict)
    stale_partial: list[Path] = field(default_factory=list)
    stale_trash: list[tuple[str, Path]] = field(default_factory=list)   # (item id, folder)


def scan(data_dir: Path) -> Scan:
    result = Scan()
    root = data_dir / ITEMS_DIR
    if not root.is_dir():
        return result
    for month in os.scandir(root):
        if not month.is_dir(follow_symlinks=False) or month.name.startswith("."):
            continue
        for entry in os.scandir(month.path):
            if not entry.is_dir(follow_symlinks=False):
                continue
            name = entry.name
            if name.startswith((PARTIAL_PREFIX, TRASH_PREFIX)):
                prefix = PARTIAL_PREFIX if name.startswith(PARTIAL_PREFIX) else TRASH_PREFIX
                pid_text, _, item_id = name[len(prefix):].partition("-")
                if not is_stale_pid(pid_text):
                    continue    # another live process (an import) is writing it
                if prefix == PARTIAL_PREFIX:
                    result.stale_partial.append(Path(entry.path))
                else:
                    result.stale_trash.append((item_id, Path(entry.path)))
            elif not name.startswith("."):
                with os.scandir(entry.path) as inside:
                    result.folders[f"{ITEMS_DIR}/{month.name}/{name}"] = frozenset(
                        f.name for f in inside if f.is_file(follow_symlinks=False))
    return result


def is_stale_pid(pid_text: str) -> bool:
    """A leftover of a process that is gone (or of an earlier life of our own pid)."""
    try:
        pid = int(pid_text)
    except ValueError:
        return True
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def set_aside(data_dir: Path, folder: Path) -> Path:
    """Moves a folder the start-up check cannot interpret to lost+found (never deletes what
    might be someone's picture)."""
    lost = data_dir / LOST_DIR
    lost.mkdir(exist_ok=True)
    target = lost / f"{folder.parent.name}-{folder.name}"
    n = 1
    while target.exists():
        n += 1
        target = lost / f"{folder.parent.name}-{folder.name}-{n}"
    os.rename(folder, target)
    return target


def failure_reason(exc: BaseException, data_dir: Path) -> str:
    """Why a write failed, as the end of a sentence ("…: the disk is full.")."""
    if isinstance(exc, OSError):
        if exc.errno in _DISK_FULL:
            return "the disk is full."
        if exc.errno in _READ_ONLY:
            return f"the data folder {data_dir} is read-only."
        return f"{exc.strerror or exc} ({exc.filename or data_dir})."
    if isinstance(exc, sqlite3.Error):
        text = str(exc).lower()
        if "full" in text:
            return "the disk is full."
        if "readonly" in text or "read-only" in text:
            return f"the data folder {data_dir} is read-only."
        return f"the database failed ({exc})."
    return f"{type(exc).__name__}: {exc}."

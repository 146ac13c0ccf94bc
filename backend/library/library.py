"""`Library`: the async face of the store. Every result from every surface is saved here once.

Threads: one writer thread owns the writing connection (SQLite allows one writer at a time
anyway, and this keeps transactions short and ordered); reads run on two reader threads with
their own connections, which WAL never blocks behind the writer. Encoding PNGs and writing
files run in the default executor so several results encode in parallel; only the commit
waits its turn. `owns_file` is synchronous (a file route asks it) on its own connection.

Durability off the job's path: a save returns once its files are written and renamed into
place and its row committed (listed as `unsynced`); one sync thread then fsyncs the saved
folders, a batch at a time, and takes them off the list. `close()` waits for it.

Owner isolation lives here and in db.py: every method a surface calls takes the owner and
passes it into the SQL; an item of another owner is simply not found.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import sqlite3
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from backend.library import db, files, record, recovery, schema
from backend.library.config import LibraryConfig
from backend.library.models import (
    SURFACES,
    ItemPage,
    ItemQuery,
    LibraryError,
    LibraryItem,
    LibrarySaveError,
    Lineage,
    NewItem,
    PruneReport,
    StartupReport,
)
from backend.library.record import EncodedItem

log = logging.getLogger(__name__)

T = TypeVar("T")
PRUNE_BATCH = 200
READER_THREADS = 2
NOT_SAVED = "The result was not saved to the library: "
OFF_PREFIX = "banana-library-"


class Library:
    def __init__(self, config: LibraryConfig, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock     # creation times and retention ages (tests move it)
        if config.persistent:
            self.data_dir = config.data_dir.resolve()
        else:   # `off`: a scratch folder for this process only, removed by close()
            self.data_dir = Path(tempfile.gettempdir()).resolve() / (
                f"{OFF_PREFIX}{os.getpid()}-{secrets.token_hex(4)}")
        self.db_path = self.data_dir / files.DB_NAME
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="library-write")
        self._syncer = ThreadPoolExecutor(1, thread_name_prefix="library-sync")
        self._to_sync: list[LibraryItem] = []
        self._sync_task: asyncio.Task[None] | None = None
        self._readers = ThreadPoolExecutor(READER_THREADS, thread_name_prefix="library-read")
        self._conns: dict[int, sqlite3.Connection] = {}
        self._conns_lock = threading.Lock()
        self._file_conn: sqlite3.Connection | None = None   # owns_file's, under its lock
        self._file_lock = threading.Lock()
        self._tasks: set[Awaitable[object]] = set()
        self._prune_task: asyncio.Task[None] | None = None
        self._prune_wanted = False
        self._opened = False
        self._closed = False

    # -- life cycle -----------------------------------------------------------------------------
    async def open(self) -> StartupReport:
        """Creates the data folder and database, applies migrations, checks integrity, makes
        rows and folders agree (see recovery.py), then applies retention."""
        if self._opened:
            raise RuntimeError("Library.open() was already called")
        started = time.monotonic()
        try:
            report = await self._write(self._open_sync)
        except (OSError, sqlite3.Error) as exc:
            raise LibraryError(
                f"The library could not open at {self.data_dir}: "
                + files.failure_reason(exc, self.data_dir), repr(exc)) from exc
        self._opened = True
        pruned = await self.prune()
        report = replace(report, items=report.items - len(pruned.removed), pruned=pruned,
                         seconds=time.monotonic() - started)
        for line in report.lines():
            (log.info if report.clean else log.warning)("%s", line)
        return report

    def _open_sync(self, conn: sqlite3.Connection) -> StartupReport:
        # _conn() created the data folder and the database file for this connection.
        if not self.config.persistent:
            _sweep_old_scratch(self.data_dir)
        if not (self.data_dir / files.ITEMS_DIR).is_dir():
            (self.data_dir / files.ITEMS_DIR).mkdir()
            files.fsync_dir(self.data_dir)
        version_from, version = schema.migrate(conn)
        integrity = db.quick_check(conn)
        if integrity != "ok":
            log.error("library database integrity check: %s", integrity)
        found = recovery.recover(conn, self.data_dir)
        return StartupReport(
            data_dir=self.data_dir, schema_version=version, migrated_from=version_from,
            items=db.totals(conn).items, integrity=integrity, adopted=found.adopted,
            partial_removed=found.partial_removed, deletes_finished=found.deletes_finished,
            set_aside=found.set_aside, rows_removed=found.rows_removed,
            thumbs_rebuilt=found.thumbs_rebuilt, files_missing=found.files_missing,
            verified=found.verified)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        while self._tasks:  # saves, deletes and the syncs they start finish first
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.to_thread(self._shutdown)

    def _shutdown(self) -> None:
        self._syncer.shutdown(wait=True)
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        with self._conns_lock:
            conns = list(self._conns.values())
            self._conns.clear()
        with self._file_lock:
            if self._file_conn is not None:
                conns.append(self._file_conn)
                self._file_conn = None
        for conn in conns:
            conn.close()
        if not self.config.persistent:
            files.remove_tree(self.data_dir)

    async def __aenter__(self) -> Library:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    # -- saving ---------------------------------------------------------------------------------
    async def save(self, item: NewItem) -> LibraryItem:
        """Stores the result, its inputs (as sent), extras and a thumbnail, then the row.
        Raises LibrarySaveError (a sentence for the user) and leaves nothing behind when the
        disk is full or the folder read-only. Cancelling the caller does not cancel the save
        half-way."""
        self._check_open()
        _validate(item)
        return await self._shielded(self._save(item))

    async def _save(self, new: NewItem) -> LibraryItem:
        created = self._clock()
        item_id = record.new_id()
        folder = files.item_folder(self.data_dir, item_id, created)
        try:
            encoded = await asyncio.to_thread(
                record.encode_new_item, new, item_id, created, folder)
        except (OSError, ValueError) as exc:
            raise LibrarySaveError(NOT_SAVED + f"the image could not be encoded ({exc}).",
                                   repr(exc)) from exc
        return await self._store(encoded)

    async def save_encoded(self, encoded: EncodedItem) -> LibraryItem:
        """Stores an item whose files are already bytes (import): same guarantees as save."""
        self._check_open()
        return await self._shielded(self._store(encoded))

    async def _store(self, encoded: EncodedItem) -> LibraryItem:
        try:
            await asyncio.to_thread(files.write_item_folder, encoded.folder, encoded.blobs)
        except OSError as exc:
            log.warning("library save failed writing %s: %r", encoded.folder, exc)
            raise LibrarySaveError(NOT_SAVED + files.failure_reason(exc, self.data_dir),
                                   repr(exc)) from exc
        try:
            stored, prune_due = await self._write(
                lambda conn: (db.insert_item(conn, encoded.item, self.data_dir, synced=False),
                              self._prune_due(conn)))
        except (sqlite3.Error, OSError, db.IdTaken) as exc:
            log.warning("library save failed committing %s: %r", encoded.item.id, exc)
            await self._forget_uncommitted(encoded.item)
            reason = ("another item has its id." if isinstance(exc, db.IdTaken)
                      else files.failure_reason(exc, self.data_dir))
            raise LibrarySaveError(NOT_SAVED + reason, repr(exc)) from exc
        self._schedule_sync(stored)
        if prune_due:
            self._schedule_prune()
        return stored

    def _schedule_sync(self, item: LibraryItem) -> None:
        self._to_sync.append(item)
        if self._sync_task is None or self._sync_task.done():
            self._sync_task = asyncio.get_running_loop().create_task(self._sync_saved())
            self._track(self._sync_task)

    async def _sync_saved(self) -> None:
        """fsync what was saved, a batch at a time (saves that land meanwhile join the next
        batch), then take the batch off the `unsynced` list. A failure is logged: the items
        stay listed, and the next start verifies them."""
        loop = asyncio.get_running_loop()
        while self._to_sync:
            batch, self._to_sync = self._to_sync, []
            folders = [item.result.parent for item in batch]
            ids = [item.id for item in batch]
            try:
                await loop.run_in_executor(self._syncer, _sync_folders, folders)
                await self._write(functools.partial(db.mark_synced, ids=ids))
            except (OSError, sqlite3.Error) as exc:
                log.warning("library: syncing %d saved items failed (the next start checks "
                            "them): %r", len(batch), exc)

    async def _forget_uncommitted(self, item: LibraryItem) -> None:
        """Removes the folder of a row that did not commit, unless (somehow) a row with its
        files exists after all: never a row without its file."""
        try:
            existing = await self._read(lambda conn: db.any_item(conn, self.data_dir, item.id))
        except sqlite3.Error:
            return      # cannot tell: leave it to the start-up check (it adopts or removes)
        if existing is None or existing.result != item.result:
            await asyncio.to_thread(files.remove_tree, item.result.parent)

    # -- reading ---------------------------------------------------------------------------------
    async def page(self, owner: str, query: ItemQuery) -> ItemPage:
        """One page of the owner's items, newest first (see ItemQuery)."""
        self._check_open()
        return await self._read(lambda conn: db.page(conn, self.data_dir, owner, query))

    async def get(self, owner: str, item_id: str) -> LibraryItem | None:
        """The item, or None when it does not exist or belongs to someone else."""
        self._check_open()
        return await self._read(lambda conn: db.get_item(conn, self.data_dir, owner, item_id))

    async def lineage(self, owner: str, item_id: str) -> Lineage | None:
        """What the item was made from (parent first) and what was made from it; None when
        it is not the owner's."""
        self._check_open()
        return await self._read(lambda conn: db.lineage(conn, self.data_dir, owner, item_id))

    async def size_bytes(self) -> int:
        """Files plus the database (the sidebar's figure; retention's too)."""
        self._check_open()
        stored = await self._read(lambda conn: db.totals(conn).bytes)
        return stored + await asyncio.to_thread(self._db_bytes)

    def owns_file(self, owner: str, path: str | Path) -> LibraryItem | None:
        """For a file route: the owner's item this file belongs to, or None (another owner's,
        not a library file, a path escaping the folder…). Synchronous: one indexed query."""
        self._check_open()
        try:
            resolved = Path(path).resolve()
            parts = resolved.relative_to(self.data_dir / files.ITEMS_DIR).parts
        except (OSError, ValueError, RuntimeError):
            return None
        if len(parts) != 3:
            return None
        with self._file_lock:
            if self._file_conn is None:
                self._file_conn = db.connect(self.db_path, read_only=True)
            item = db.get_item(self._file_conn, self.data_dir, owner, parts[1])
        if item is None or resolved not in item.files:
            return None
        return item

    # -- changing -------------------------------------------------------------------------------
    async def set_star(self, owner: str, item_id: str, starred: bool) -> bool:
        """False when the item is not the owner's. Starred items are never pruned."""
        self._check_open()
        return await self._write(lambda conn: db.set_star(conn, owner, item_id, starred))

    async def delete(self, owner: str, item_id: str) -> bool:
        """Deletes the owner's item: files and row. False when it is not the owner's."""
        self._check_open()
        return await self._shielded(self._write(lambda conn: self._delete_sync(conn, owner, item_id)))

    def _delete_sync(self, conn: sqlite3.Connection, owner: str, item_id: str) -> bool:
        item = db.get_item(conn, self.data_dir, owner, item_id)
        if item is None:
            return False
        self._remove(conn, [item], owner)
        return True

    def _remove(self, conn: sqlite3.Connection, items: list[LibraryItem],
                owner: str | None) -> None:
        """Folders out of the way first, then the rows, then the files: a crash in between
        leaves .trash folders the start-up check finishes, never a row without files."""
        trashed: list[tuple[Path, Path]] = []
        try:
            for item in items:
                trash = files.trash_folder(item.result.parent)
                if trash is not None:
                    trashed.append((item.result.parent, trash))
            db.delete_rows(conn, [i.id for i in items], owner)
        except (OSError, sqlite3.Error) as exc:
            for folder, trash in trashed:
                os.rename(trash, folder)
            raise LibraryError("The item was not deleted: "
                               + files.failure_reason(exc, self.data_dir), repr(exc)) from exc
        for _, trash in trashed:
            files.remove_tree(trash)

    # -- retention ------------------------------------------------------------------------------
    async def prune(self) -> PruneReport:
        """Removes the oldest unstarred items past STUDIO_LIBRARY_MAX_DAYS, then until the
        library fits STUDIO_LIBRARY_MAX_GB; files and rows together."""
        self._check_open()
        if self.config.max_bytes is None and self.config.effective_max_age_s is None:
            return PruneReport()
        return await self._write(self._prune_sync)

    def _prune_due(self, conn: sqlite3.Connection) -> bool:
        """Cheap (two indexed lookups): called after every save."""
        max_bytes, max_age = self.config.max_bytes, self.config.effective_max_age_s
        if max_bytes is not None and self._budget_bytes(conn) > max_bytes:
            return True
        if max_age is not None:
            oldest = db.oldest_unstarred_created(conn)
            return oldest is not None and oldest < self._clock() - max_age
        return False

    def _prune_sync(self, conn: sqlite3.Connection) -> PruneReport:
        removed: list[str] = []
        freed = by_age = by_size = 0
        max_age = self.config.effective_max_age_s
        if max_age is not None:
            cutoff = self._clock() - max_age
            while batch := db.oldest_unstarred(conn, self.data_dir, before=cutoff,
                                               limit=PRUNE_BATCH):
                self._remove(conn, batch, owner=None)
                removed += [i.id for i in batch]
                freed += sum(i.size_bytes for i in batch)
                by_age += len(batch)
        over_budget = False
        if self.config.max_bytes is not None:
            excess = self._budget_bytes(conn) - self.config.max_bytes
            while excess > 0:
                batch = db.oldest_unstarred(conn, self.data_dir, before=None, limit=PRUNE_BATCH)
                if not batch:
                    over_budget = True
                    break
                chosen: list[LibraryItem] = []
                for item in batch:
                    if excess <= 0:
                        break
                    chosen.append(item)
                    excess -= item.size_bytes
                self._remove(conn, chosen, owner=None)
                removed += [i.id for i in chosen]
                freed += sum(i.size_bytes for i in chosen)
                by_size += len(chosen)
        report = PruneReport(tuple(removed), freed, by_age, by_size, over_budget)
        if removed or over_budget:
            log.info("library retention: %s", report.sentence())
        return report

    def _schedule_prune(self) -> None:
        """Prunes in the background; a save that finds it due while a prune runs makes it
        run once more (that save's bytes may not have been counted yet)."""
        self._prune_wanted = True
        if self._prune_task is None or self._prune_task.done():
            self._prune_task = asyncio.get_running_loop().create_task(self._prune_while_wanted())
            self._track(self._prune_task)

    async def _prune_while_wanted(self) -> None:
        while self._prune_wanted and not self._closed:
            self._prune_wanted = False
            try:
                await self.prune()
            except (LibraryError, OSError, sqlite3.Error) as exc:
                log.warning("library retention failed: %s", exc)
                return

    # -- export / import (the whole library: admin tools, not surfaces) ------------------------
    async def items_for_export(self, owner: str | None = None) -> list[LibraryItem]:
        """Every item (or one owner's), oldest first. For export and admin commands only."""
        self._check_open()
        return await self._read(lambda conn: db.all_items(conn, self.data_dir, owner))

    async def find_any(self, item_id: str) -> LibraryItem | None:
        """An item by id whoever owns it. For import's collision check only."""
        self._check_open()
        return await self._read(lambda conn: db.any_item(conn, self.data_dir, item_id))

    # -- plumbing ------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if not self._opened or self._closed:
            raise RuntimeError("the Library is not open (call await library.open())")

    def _budget_bytes(self, conn: sqlite3.Connection) -> int:
        """What retention holds under STUDIO_LIBRARY_MAX_GB: the files and the database file.
        Not the WAL: it is transient (reset at each checkpoint, ~4 MB at most here), and
        chasing it would prune pictures for a log that shrinks by itself."""
        return db.totals(conn).bytes + self._db_bytes(("",))

    def _db_bytes(self, suffixes: tuple[str, ...] = ("", "-wal", "-shm")) -> int:
        total = 0
        for suffix in suffixes:
            with contextlib.suppress(OSError):     # -wal/-shm exist only while open
                total += os.stat(f"{self.db_path}{suffix}").st_size
        return total

    def _conn(self, read_only: bool) -> sqlite3.Connection:
        """This thread's connection (each executor thread keeps one)."""
        key = threading.get_ident()
        with self._conns_lock:
            conn = self._conns.get(key)
        if conn is None:
            if not read_only:
                self.data_dir.mkdir(parents=True, exist_ok=True)
            conn = db.connect(self.db_path, read_only=read_only)
            if not read_only:
                db.enable_wal(conn)
            with self._conns_lock:
                self._conns[key] = conn
        return conn

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, lambda: work(self._conn(False)))

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, lambda: work(self._conn(True)))

    async def _shielded(self, work: Coroutine[object, object, T]) -> T:
        """Runs to the end even if the caller is cancelled (a save or delete half done would
        only be finished by the next start-up check)."""
        task = asyncio.get_running_loop().create_task(work)
        self._track(task)
        return await asyncio.shield(task)

    def _track(self, task: asyncio.Task[T]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._forget_task)

    def _forget_task(self, task: asyncio.Task[T]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("library task ended with %r", task.exception())


def _sync_folders(folders: list[Path]) -> None:
    for folder in folders:
        files.sync_item_folder(folder)


def _validate(item: NewItem) -> None:
    if not item.owner:
        raise ValueError("NewItem.owner is empty")
    if item.surface not in SURFACES:
        raise ValueError(f"NewItem.surface must be one of {SURFACES}, not {item.surface!r}")
    if not item.mode:
        raise ValueError("NewItem.mode is empty")


def _sweep_old_scratch(ours: Path) -> None:
    """`off` mode: remove the scratch libraries of processes that are gone."""
    for entry in ours.parent.glob(f"{OFF_PREFIX}*"):
        pid_text = entry.name[len(OFF_PREFIX):].partition("-")[0]
        if entry != ours and entry.is_dir() and files.is_stale_pid(pid_text):
            files.remove_tree(entry)

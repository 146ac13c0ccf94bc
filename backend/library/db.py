"""The SQL: connections and every query, synchronous (the Library runs them in its threads).

The owner is part of the WHERE clause of every query a surface can reach; the few queries
without one (start-up check, retention, export/import) say so in their name or docstring.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from backend.library.models import ItemPage, ItemQuery, LibraryItem, Lineage
from backend.library.record import COLUMNS, item_from_row, item_to_row

MAX_PAGE = 500
MAX_ANCESTORS = 100
MAX_CHILDREN = 500
_SELECT = "SELECT " + ", ".join(f"items.{c}" for c in COLUMNS) + ", items.seq FROM items"
_WORDS = re.compile(r"[^\W_]+")    # what FTS5's unicode61 tokenizer calls a word


class IdTaken(Exception):
    """Another item already has this id (a different one: not our own adopted folder)."""


def connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    # Autocommit mode: writes open their own BEGIN IMMEDIATE transactions.
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    # WAL + NORMAL: a crashed process never corrupts the database or loses a commit; a power
    # cut may lose the last commits, whose folders the start-up check then adopts.
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA journal_size_limit = 4194304")   # the WAL shrinks back to 4 MB
    if read_only:
        conn.execute("PRAGMA query_only = ON")
    return conn


def enable_wal(conn: sqlite3.Connection) -> str:
    return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])


def quick_check(conn: sqlite3.Connection) -> str:
    rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check")]
    return "ok" if rows == ["ok"] else "; ".join(rows[:3])


# -- writes ---------------------------------------------------------------------------------------
def insert_item(conn: sqlite3.Connection, item: LibraryItem, data_dir: Path, *,
                synced: bool = True) -> LibraryItem:
    """Inserts the row; returns it as stored. A parent that is not one of the same owner's
    items is dropped (lineage never points at someone else's picture). An existing row with
    the same id, owner, creation time and files (a start-up check in another process adopted
    our folder first) counts as success. `synced=False`: its files are not yet fsynced (the
    same transaction lists it in `unsynced`; `mark_synced` takes it off)."""
    row = item_to_row(item, data_dir)
    conn.execute("BEGIN IMMEDIATE")
    try:
        if item.parent_id is not None:
            found = conn.execute("SELECT 1 FROM items WHERE id = ? AND owner = ?",
                                 (item.parent_id, item.owner)).fetchone()
            if found is None:
                row["parent_id"] = None
        placeholders = ", ".join(f":{c}" for c in COLUMNS)
        cursor = conn.execute(
            f"INSERT INTO items ({', '.join(COLUMNS)}) VALUES ({placeholders}) "
            "ON CONFLICT(id) DO NOTHING", row)
        if cursor.rowcount == 0:
            existing = conn.execute(f"{_SELECT} WHERE id = ?", (item.id,)).fetchone()
            if (existing is None or existing["owner"] != item.owner
                    or existing["result_path"] != row["result_path"]):
                raise IdTaken(item.id)
        if not synced:
            conn.execute("INSERT OR IGNORE INTO unsynced (id) VALUES (?)", (item.id,))
        stored = conn.execute(f"{_SELECT} WHERE id = ?", (item.id,)).fetchone()
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return item_from_row(stored, data_dir)


def mark_synced(conn: sqlite3.Connection, ids: Sequence[str]) -> None:
    """These items' files are on the disk (fsynced): no need to verify them at start-up."""
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        conn.execute(f"DELETE FROM unsynced WHERE id IN ({', '.join('?' * len(chunk))})",
                     chunk)


def unsynced_ids(conn: sqlite3.Connection) -> list[str]:
    return [str(r[0]) for r in conn.execute("SELECT id FROM unsynced ORDER BY id")]


def set_star(conn: sqlite3.Connection, owner: str, item_id: str, starred: bool) -> bool:
    cursor = conn.execute("UPDATE items SET starred = ? WHERE id = ? AND owner = ?",
                          (int(starred), item_id, owner))
    return cursor.rowcount > 0


def delete_rows(conn: sqlite3.Connection, ids: Sequence[str], owner: str | None) -> int:
    """Deletes rows by id, only the owner's when given (None: retention and the start-up
    check, which act on the whole library)."""
    if not ids:
        return 0
    marks = ", ".join("?" for _ in ids)
    sql = f"DELETE FROM items WHERE id IN ({marks})"
    args: list[object] = list(ids)
    if owner is not None:
        sql += " AND owner = ?"
        args.append(owner)
    conn.execute("BEGIN IMMEDIATE")
    try:
        count = conn.execute(sql, args).rowcount
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return count


def update_files(conn: sqlite3.Connection, item: LibraryItem, data_dir: Path) -> None:
    """Rewrites an item's file columns (the start-up check dropped a missing input)."""
    row = item_to_row(item, data_dir)
    conn.execute("UPDATE items SET inputs = ?, extras = ?, size_bytes = ? WHERE id = ?",
                 (row["inputs"], row["extras"], row["size_bytes"], item.id))


# -- reads (always one owner's) -----------------------------------------------------------------
def get_item(conn: sqlite3.Connection, data_dir: Path, owner: str,
             item_id: str) -> LibraryItem | None:
    row = conn.execute(f"{_SELECT} WHERE id = ? AND owner = ?", (item_id, owner)).fetchone()
    return None if row is None else item_from_row(row, data_dir)


def page(conn: sqlite3.Connection, data_dir: Path, owner: str, query: ItemQuery) -> ItemPage:
    where = ["items.owner = ?"]
    args: list[object] = [owner]
    if query.mode is not None:
        where.append("items.mode = ?")
        args.append(query.mode)
    if query.starred is not None:
        where.append("items.starred = ?")
        args.append(int(query.starred))
    if query.since is not None:
        where.append("items.created >= ?")
        args.append(query.since)
    if query.until is not None:
        where.append("items.created < ?")
        args.append(query.until)
    match = fts_query(query.text, query.include_negative)
    if match is not None:
        where.append("items.seq IN (SELECT rowid FROM items_fts WHERE items_fts MATCH ?)")
        args.append(match)
    total: int | None = None
    if query.count_total:
        total = int(conn.execute(f"SELECT count(*) FROM items WHERE {' AND '.join(where)}",
                                 args).fetchone()[0])
    if query.before:
        created, seq = parse_cursor(query.before)
        where.append("(items.created, items.seq) < (?, ?)")
        args.extend((created, seq))
    limit = max(1, min(query.limit, MAX_PAGE))
    rows = conn.execute(
        f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY items.created DESC, items.seq DESC "
        "LIMIT ? OFFSET ?", (*args, limit + 1, max(0, query.offset))).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = make_cursor(float(rows[-1]["created"]), int(rows[-1]["seq"])) if more else None
    return ItemPage(tuple(item_from_row(r, data_dir) for r in rows), cursor, total)


def lineage(conn: sqlite3.Connection, data_dir: Path, owner: str,
            item_id: str) -> Lineage | None:
    item = get_item(conn, data_dir, owner, item_id)
    if item is None:
        return None
    ancestors = conn.execute(
        f"""WITH RECURSIVE chain(id, depth) AS (
                SELECT parent_id, 1 FROM items WHERE id = ? AND owner = ?
                UNION ALL
                SELECT items.parent_id, chain.depth + 1 FROM items JOIN chain ON items.id = chain.id
                WHERE items.owner = ? AND chain.depth < {MAX_ANCESTORS}
            )
            {_SELECT} JOIN chain ON items.id = chain.id WHERE items.owner = ?
            ORDER BY chain.depth""", (item_id, owner, owner, owner)).fetchall()
    children = conn.execute(
        f"{_SELECT} WHERE parent_id = ? AND owner = ? ORDER BY created, seq LIMIT ?",
        (item_id, owner, MAX_CHILDREN)).fetchall()
    return Lineage(item, tuple(item_from_row(r, data_dir) for r in ancestors),
                   tuple(item_from_row(r, data_dir) for r in children))


# -- the whole library (start-up check, retention, export, import) ----------------------------
@dataclass(frozen=True)
class Totals:
    items: int
    bytes: int


def totals(conn: sqlite3.Connection) -> Totals:
    row = conn.execute("SELECT items, bytes FROM totals WHERE one = 1").fetchone()
    return Totals(int(row[0]), int(row[1]))


def all_items(conn: sqlite3.Connection, data_dir: Path,
              owner: str | None = None) -> list[LibraryItem]:
    """Every item (of one owner when given), oldest first: for maintenance and export."""
    if owner is None:
        rows = conn.execute(f"{_SELECT} ORDER BY created, seq").fetchall()
    else:
        rows = conn.execute(f"{_SELECT} WHERE owner = ? ORDER BY created, seq",
                            (owner,)).fetchall()
    return [item_from_row(r, data_dir) for r in rows]


def any_item(conn: sqlite3.Connection, data_dir: Path, item_id: str) -> LibraryItem | None:
    """An item by id whoever owns it: import's collision check only."""
    row = conn.execute(f"{_SELECT} WHERE id = ?", (item_id,)).fetchone()
    return None if row is None else item_from_row(row, data_dir)


def oldest_unstarred(conn: sqlite3.Connection, data_dir: Path, *, before: float | None,
                     limit: int) -> list[LibraryItem]:
    """Retention's candidates, oldest first (index items_retention)."""
    if before is None:
        rows = conn.execute(f"{_SELECT} WHERE starred = 0 ORDER BY created, seq LIMIT ?",
                            (limit,)).fetchall()
    else:
        rows = conn.execute(
            f"{_SELECT} WHERE starred = 0 AND created < ? ORDER BY created, seq LIMIT ?",
            (before, limit)).fetchall()
    return [item_from_row(r, data_dir) for r in rows]


def oldest_unstarred_created(conn: sqlite3.Connection) -> float | None:
    row = conn.execute("SELECT min(created) FROM items WHERE starred = 0").fetchone()
    return None if row[0] is None else float(row[0])


# -- helpers --------------------------------------------------------------------------------------
def fts_query(text: str, include_negative: bool) -> str | None:
    """A safe FTS5 query from what a person typed: every word must appear (as a prefix), in
    the prompt or region text (and the negative prompt when asked). FTS syntax in the text is
    treated as plain words, never as operators."""
    words = _WORDS.findall(text)
    if not words:
        return None
    columns = "{prompt region negative}" if include_negative else "{prompt region}"
    return f"{columns} : (" + " AND ".join(f'"{w}"*' for w in words[:32]) + ")"


def make_cursor(created: float, seq: int) -> str:
    return f"{created!r}_{seq}"


def parse_cursor(cursor: str) -> tuple[float, int]:
    created, _, seq = cursor.partition("_")
    try:
        return float(created), int(seq)
    except ValueError:
        raise ValueError(f"not a library page cursor: {cursor!r}") from None

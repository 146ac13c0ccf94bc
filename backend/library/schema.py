"""The database schema: one list of migrations, applied in order, never edited once released.

`PRAGMA user_version` is the number of migrations applied. To change the schema, append a
migration (a tuple of statements); never change an old one: a library made by an older
studio is brought up to date step by step on `open()`.
"""

from __future__ import annotations

import sqlite3

from backend.library.models import LibraryError

Migration = tuple[str, ...]

MIGRATIONS: tuple[Migration, ...] = (
    # v1: the first release.
    (
        """CREATE TABLE items (
            seq         INTEGER PRIMARY KEY,    -- stable rowid: the FTS index points at it
            id          TEXT NOT NULL UNIQUE,   -- short, random, URL-safe
            owner       TEXT NOT NULL,
            surface     TEXT NOT NULL CHECK (surface IN ('ui', 'api', 'chat', 'cli')),
            mode        TEXT NOT NULL,
            created     REAL NOT NULL,          -- epoch seconds
            prompt      TEXT,
            negative    TEXT,
            region      TEXT,
            seed        INTEGER,
            width       INTEGER NOT NULL,
            height      INTEGER NOT NULL,
            steps       INTEGER,
            cfg         REAL,
            variant     TEXT,
            timings     TEXT NOT NULL DEFAULT '{}',   -- JSON {name: seconds}
            params      TEXT NOT NULL DEFAULT '{}',   -- JSON: parameters without a column
            notes       TEXT NOT NULL DEFAULT '[]',   -- JSON [sentence, ...]
            starred     INTEGER NOT NULL DEFAULT 0 CHECK (starred IN (0, 1)),
            parent_id   TEXT REFERENCES items(id) ON DELETE SET NULL,
            result_path TEXT NOT NULL,              -- relative to the data folder
            thumb_path  TEXT NOT NULL,
            inputs      TEXT NOT NULL DEFAULT '[]', -- JSON [[role, path], ...]
            extras      TEXT NOT NULL DEFAULT '{}', -- JSON {name: path}
            size_bytes  INTEGER NOT NULL DEFAULT 0  -- all of its files
        )""",
        "CREATE INDEX items_owner_created ON items(owner, created, seq)",
        "CREATE INDEX items_owner_mode ON items(owner, mode, created, seq)",
        "CREATE INDEX items_owner_starred ON items(owner, starred, created, seq)",
        "CREATE INDEX items_parent ON items(parent_id)",
        "CREATE INDEX items_retention ON items(starred, created)",
        # Totals kept by triggers: the sidebar's size and the retention check are O(1).
        """CREATE TABLE totals (
            one   INTEGER PRIMARY KEY CHECK (one = 1),
            items INTEGER NOT NULL,
            bytes INTEGER NOT NULL
        )""",
        "INSERT INTO totals (one, items, bytes) VALUES (1, 0, 0)",
        """CREATE TRIGGER items_totals_insert AFTER INSERT ON items BEGIN
            UPDATE totals SET items = items + 1, bytes = bytes + new.size_bytes;
        END""",
        """CREATE TRIGGER items_totals_delete AFTER DELETE ON items BEGIN
            UPDATE totals SET items = items - 1, bytes = bytes - old.size_bytes;
        END""",
        """CREATE TRIGGER items_totals_update AFTER UPDATE OF size_bytes ON items BEGIN
            UPDATE totals SET bytes = bytes - old.size_bytes + new.size_bytes;
        END""",
        # Full-text search over the words people typed; an external-content index kept in
        # sync by triggers (the text is stored once, in items).
        """CREATE VIRTUAL TABLE items_fts USING fts5(
            prompt, negative, region,
            content = 'items', content_rowid = 'seq',
            tokenize = 'unicode61 remove_diacritics 2'
        )""",
        """CREATE TRIGGER items_fts_insert AFTER INSERT ON items BEGIN
            INSERT INTO items_fts (rowid, prompt, negative, region)
            VALUES (new.seq, new.prompt, new.negative, new.region);
        END""",
        """CREATE TRIGGER items_fts_delete AFTER DELETE ON items BEGIN
            INSERT INTO items_fts (items_fts, rowid, prompt, negative, region)
            VALUES ('delete', old.seq, old.prompt, old.negative, old.region);
        END""",
        """CREATE TRIGGER items_fts_update AFTER UPDATE OF prompt, negative, region ON items
        BEGIN
            INSERT INTO items_fts (items_fts, rowid, prompt, negative, region)
            VALUES ('delete', old.seq, old.prompt, old.negative, old.region);
            INSERT INTO items_fts (rowid, prompt, negative, region)
            VALUES (new.seq, new.prompt, new.negative, new.region);
        END""",
    ),
    # v2: items whose files the OS may still hold only in memory (saved, not yet fsynced: the
    # fsync runs after the save returns, off the job's path). The start-up check verifies
    # their files against their manifest before trusting them (docs/library.md).
    (
        """CREATE TABLE unsynced (
            id TEXT PRIMARY KEY REFERENCES items(id) ON DELETE CASCADE
        )""",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> tuple[int, int]:
    """Applies the missing migrations, each in its own transaction; returns (from, to).

    The version is read again under the write lock, so two processes opening the same
    library at once apply each migration once.
    """
    start = _version(conn)
    if start > SCHEMA_VERSION:
        raise LibraryError(
            f"The library was written by a newer Banana Studio (schema v{start}; this one "
            f"knows v{SCHEMA_VERSION}). Update the studio, or point STUDIO_DATA_DIR elsewhere.")
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = _version(conn)
            if version >= SCHEMA_VERSION:
                conn.execute("COMMIT")
                return start, version
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])

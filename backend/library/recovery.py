"""The start-up check: make the rows and the folders agree again after a crash.

Rules (the order of a save is: files → folder renamed into place → row committed; a delete:
folder renamed to .trash → row deleted → folder removed):
- `.partial-…` of a dead process: a save that never finished; removed (no row can point
  at it: the row is committed only after the rename).
- `.trash-…` of a dead process: a delete that was asked for; its row is deleted (if the
  commit did not happen) and the folder removed.
- A final folder without a row: the crash hit between the rename and the commit. Its
  `item.json` (the row, written last into the folder before the rename) rebuilds the row if it
  reads back whole and every file it lists is there: the item is adopted. Anything else is
  moved to lost+found, never deleted.
- A row whose result PNG is missing: the item is gone; the row is removed (what is left of
  its folder goes to lost+found). A missing thumbnail is rebuilt from the PNG. A missing
  input or extra is dropped from the row (the picture itself is intact), and reported.
- A row still listed `unsynced` (saved, not yet fsynced when the process or the machine
  stopped): its files are checked against the sizes and CRC-32s its `item.json` lists (after
  a kill they are whole: the OS kept them; after a power cut they may be short or zeros).
  Whole: fsynced and kept. Damaged: the row is removed and the folder goes to lost+found.
  A folder about to be adopted is checked the same way first.

One walk of the folders and one read of the rows: ~0.1 s at 10,000 items (bench/library.py);
the unsynced items (the last second's saves at most) are read whole.
"""

from __future__ import annotations

import io
import json
import logging
import sqlite3
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from backend.library import db, files, png
from backend.library.models import LibraryItem
from backend.library.record import MANIFEST_NAME, item_from_json, manifest_checks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recovery:
    adopted: tuple[str, ...]
    partial_removed: int
    deletes_finished: tuple[str, ...]
    set_aside: tuple[Path, ...]
    rows_removed: tuple[str, ...]
    thumbs_rebuilt: tuple[str, ...]
    files_missing: tuple[str, ...]
    verified: int = 0            # unsynced items checked whole (and fsynced now)


def recover(conn: sqlite3.Connection, data_dir: Path) -> Recovery:
    damaged_rows, damaged_aside, verified = _verify_unsynced(conn, data_dir)
    scan = files.scan(data_dir)
    for partial in scan.stale_partial:
        log.info("removing an unfinished save: %s", partial)
        files.remove_tree(partial)

    finished: list[str] = []
    for item_id, trash in scan.stale_trash:
        db.delete_rows(conn, [item_id], owner=None)
        files.remove_tree(trash)
        finished.append(item_id)

    claimed: set[str] = set()
    set_aside: list[Path] = list(damaged_aside)
    rows_removed: list[str] = list(damaged_rows)
    thumbs: list[str] = []
    missing: list[str] = []
    # Raw columns, not LibraryItems: building 10,000 items costs a second; few need repair.
    rows = conn.execute(
        "SELECT id, result_path, thumb_path, inputs, extras FROM items").fetchall()
    for item_id, result_path, thumb_path, inputs, extras in rows:
        folder, _, result_name = str(result_path).rpartition("/")
        names = scan.folders.get(folder)
        claimed.add(folder)
        if names is None or result_name not in names:
            log.warning("item %s lost its PNG %s: row removed", item_id, result_path)
            db.delete_rows(conn, [item_id], owner=None)
            rows_removed.append(item_id)
            if names is not None:
                set_aside.append(files.set_aside(data_dir, data_dir / folder))
            continue
        wanted = [p for _, p in json.loads(inputs)] + list(json.loads(extras).values())
        if str(thumb_path).rpartition("/")[2] in names and all(
                p.rpartition("/")[2] in names for p in wanted):
            continue
        item = db.any_item(conn, data_dir, item_id)
        if item is None:
            continue
        if item.thumb.name not in names and _rebuild_thumb(item):
            thumbs.append(item.id)
        kept_inputs = tuple(i for i in item.inputs if i.path.name in names)
        kept_extras = {k: p for k, p in item.extras.items() if p.name in names}
        if len(kept_inputs) != len(item.inputs) or len(kept_extras) != len(item.extras):
            log.warning("item %s lost an input or extra file: dropped from its row", item.id)
            kept = replace(item, inputs=kept_inputs, extras=kept_extras,
                           size_bytes=sum(p.stat().st_size for p in (
                               item.result, item.thumb, *(i.path for i in kept_inputs),
                               *kept_extras.values()) if p.exists()))
            db.update_files(conn, kept, data_dir)
            missing.append(item.id)

    adopted: list[str] = []
    candidates: list[tuple[LibraryItem, Path]] = []
    for relative, names in scan.folders.items():
        if relative in claimed:
            continue
        orphan_dir = data_dir / relative
        orphan = _readable_orphan(orphan_dir, names)
        if orphan is None:
            set_aside.append(files.set_aside(data_dir, orphan_dir))
        else:
            candidates.append((orphan, orphan_dir))
    for orphan, orphan_dir in sorted(candidates, key=lambda c: c[0].created):  # parents first
        try:
            db.insert_item(conn, orphan, data_dir)
        except (db.IdTaken, sqlite3.IntegrityError) as exc:
            log.warning("orphan folder %s not adopted: %s", orphan_dir, exc)
            set_aside.append(files.set_aside(data_dir, orphan_dir))
            continue
        log.info("adopted item %s (saved just before a crash)", orphan.id)
        adopted.append(orphan.id)
    return Recovery(tuple(adopted), len(scan.stale_partial), tuple(finished),
                    tuple(set_aside), tuple(rows_removed), tuple(thumbs), tuple(missing),
                    verified)


def _verify_unsynced(conn: sqlite3.Connection,
                     data_dir: Path) -> tuple[list[str], list[Path], int]:
    """The items saved but maybe not on the disk yet: keep (and fsync) the whole ones, remove
    the rows of the damaged ones (their folders go to lost+found). Before the folder walk, so
    it sees the result."""
    removed: list[str] = []
    aside: list[Path] = []
    verified = 0
    ids = db.unsynced_ids(conn)
    for item_id in ids:
        item = db.any_item(conn, data_dir, item_id)
        if item is None:
            continue
        folder = item.result.parent
        if not folder.is_dir():
            continue    # a delete in progress (.trash-…) or gone: the rules below apply
        if _whole(folder):
            files.sync_item_folder(folder)
            verified += 1
            continue
        log.warning("item %s was not fully on the disk (a power cut before its sync): "
                    "row removed", item_id)
        db.delete_rows(conn, [item_id], owner=None)
        removed.append(item_id)
        aside.append(files.set_aside(data_dir, folder))
    db.mark_synced(conn, ids)
    return removed, aside, verified


def _whole(folder: Path) -> bool:
    """Every file the manifest lists is there with its size and CRC-32 (a manifest from
    before the checks: the sizes add up to its size_bytes)."""
    try:
        data = json.loads((folder / MANIFEST_NAME).read_bytes())
        checks = manifest_checks(data)
        if checks is None:
            item = item_from_json(data, folder)
            sizes = sum(p.stat().st_size for p in item.files if p.name != MANIFEST_NAME)
            return sizes == item.size_bytes
        for name, (size, crc) in checks.items():
            blob = (folder / name).read_bytes()
            if len(blob) != size or zlib.crc32(blob) != crc:
                log.warning("%s/%s does not match its manifest", folder, name)
                return False
    except (OSError, ValueError) as exc:
        log.warning("cannot verify %s: %s", folder, exc)
        return False
    return True


def _readable_orphan(folder: Path, names: frozenset[str]) -> LibraryItem | None:
    """The item described by the folder's manifest, when complete; None otherwise."""
    if MANIFEST_NAME not in names:
        log.warning("folder without item.json: %s", folder)
        return None
    try:
        item = item_from_json(json.loads((folder / MANIFEST_NAME).read_bytes()), folder)
    except (OSError, ValueError) as exc:
        log.warning("unreadable item.json in %s: %s", folder, exc)
        return None
    if item.id != folder.name or any(
            p.parent != folder or p.name not in names for p in item.files):
        log.warning("item.json in %s does not match the folder's files", folder)
        return None
    if not _whole(folder):     # a power cut may have left it short: never adopt that
        return None
    files.sync_item_folder(folder)
    return item


def _rebuild_thumb(item: LibraryItem) -> bool:
    try:
        with Image.open(io.BytesIO(item.result.read_bytes())) as image:
            image.load()
            files.replace_file(item.thumb, png.thumbnail_webp(image))
    except (OSError, ValueError) as exc:
        log.warning("thumbnail of %s not rebuilt: %s", item.id, exc)
        return False
    return True

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

One walk of the folders and one read of the rows: ~0.1 s at 10,000 items (bench/library.py).
"""

from __future__ import annotations

import io
import json
import logging
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from backend.library import db, files, png
from backend.library.models import LibraryItem
from backend.library.record import MANIFEST_NAME, item_from_json

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


def recover(conn: sqlite3.Connection, data_dir: Path) -> Recovery:
    scan = files.scan(data_dir)
    for partial in scan.stale_partial:
        log.info("removing an unfinished save: %s", partial)
        files.remove_tree(partial)

    finished: list[str] = []
    for item_id, trash in scan.stale_trash:
        db.delete_rows(conn, [item_id], owner=None)
        files.remove_tree(trash)
        finished.append(item_id)

    claimed: set[Path] = set()
    set_aside: list[Path] = []
    rows_removed: list[str] = []
    thumbs: list[str] = []
    missing: list[str] = []
    for item in db.all_items(conn, data_dir):
        folder = item.result.parent
        names = scan.folders.get(folder)
        claimed.add(folder)
        if names is None or item.result.name not in names:
            log.warning("item %s lost its PNG %s: row removed", item.id, item.result)
            db.delete_rows(conn, [item.id], owner=None)
            rows_removed.append(item.id)
            if names is not None:
                set_aside.append(files.set_aside(data_dir, folder))
            continue
        if item.thumb.name not in names and _rebuild_thumb(item):
            thumbs.append(item.id)
        kept_inputs = tuple(i for i in item.inputs if i.path.name in names)
        kept_extras = {k: p for k, p in item.extras.items() if p.name in names}
        if len(kept_inputs) != len(item.inputs) or len(kept_extras) != len(item.extras):
            log.warning("item %s lost an input or extra file: dropped from its row", item.id)
            kept = replace(item, inputs=kept_inputs, extras=kept_extras,
                           size_bytes=files.folder_bytes(folder) - _size(folder / MANIFEST_NAME))
            db.update_files(conn, kept, data_dir)
            missing.append(item.id)

    adopted: list[str] = []
    orphans = [(folder, names) for folder, names in scan.folders.items() if folder not in claimed]
    candidates: list[tuple[LibraryItem, Path]] = []
    for folder, names in orphans:
        orphan = _readable_orphan(folder, names)
        if orphan is None:
            set_aside.append(files.set_aside(data_dir, folder))
        else:
            candidates.append((orphan, folder))
    for item, folder in sorted(candidates, key=lambda c: c[0].created):   # parents first
        try:
            db.insert_item(conn, item, data_dir)
        except (db.IdTaken, sqlite3.IntegrityError) as exc:
            log.warning("orphan folder %s not adopted: %s", folder, exc)
            set_aside.append(files.set_aside(data_dir, folder))
            continue
        log.info("adopted item %s (saved just before a crash)", item.id)
        adopted.append(item.id)
    return Recovery(tuple(adopted), len(scan.stale_partial), tuple(finished),
                    tuple(set_aside), tuple(rows_removed), tuple(thumbs), tuple(missing))


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


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0

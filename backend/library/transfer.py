"""Export a library (or one owner's part) to a zip, and import such a zip into a library.

The zip mirrors the data folder: `library/<month>/<id>/<file>` for every file, and
`manifest.json` (written last) with one entry per item in the same format as each folder's
`item.json`, paths relative to the zip's root. PNG/WebP/JPEG are stored, not deflated (they are
compressed already).

Import adds every item through the same atomic save as a new result (`Library.save_encoded`),
oldest first so parents come before children. It keeps lineage (parent ids follow re-ids),
gives an item a new id when its id is taken by a different item, skips items already present
(same id, owner and creation time: importing the same zip twice is harmless), and assigns the
owner when one is given. Files are copied byte for byte, never re-encoded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

from backend.library import files, record
from backend.library.library import Library
from backend.library.models import LibraryError, LibraryItem

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
EXPORT_FORMAT = "banana-library-export"
EXPORT_VERSION = 1
ZIP_ROOT = Path("/zip")             # where manifest paths are anchored while reading them
MAX_MANIFEST_BYTES = 512 * 1024 * 1024
MAX_MEMBER_BYTES = 1024 * 1024 * 1024
_STORED = (".png", ".webp", ".jpg", ".jpeg", ".gif", ".zip")


@dataclass(frozen=True)
class ExportReport:
    path: Path
    items: int
    bytes: int
    skipped: tuple[str, ...]        # deleted while the export ran

    def sentence(self) -> str:
        extra = f" ({len(self.skipped)} deleted meanwhile, skipped)" if self.skipped else ""
        return f"Exported {self.items} items ({self.bytes / 1e6:.1f} MB) to {self.path}{extra}."


@dataclass(frozen=True)
class ImportReport:
    imported: tuple[str, ...]       # ids as stored here
    already_present: int
    reassigned: int                 # items that got a new id (theirs was taken)
    problems: tuple[str, ...]       # one sentence per item not imported

    def sentence(self) -> str:
        parts = [f"Imported {len(self.imported)} items"]
        if self.already_present:
            parts.append(f"{self.already_present} already present")
        if self.reassigned:
            parts.append(f"{self.reassigned} given new ids")
        if self.problems:
            parts.append(f"{len(self.problems)} not imported")
        return ", ".join(parts) + "."


async def export_library(library: Library, zip_path: str | Path,
                         owner: str | None = None) -> ExportReport:
    items = await library.items_for_export(owner)
    return await asyncio.to_thread(_write_zip, library.data_dir, items, Path(zip_path), owner)


def _write_zip(data_dir: Path, items: list[LibraryItem], zip_path: Path,
               owner: str | None) -> ExportReport:
    zip_path = zip_path.resolve()
    tmp = zip_path.with_name(f".{zip_path.name}.{os.getpid()}.tmp")
    entries: list[dict[str, object]] = []
    skipped: list[str] = []
    total = 0
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            for item in items:
                try:
                    datas = [(p, p.read_bytes()) for p in item.files]
                except FileNotFoundError:
                    skipped.append(item.id)
                    continue
                for path, data in datas:
                    arcname = path.relative_to(data_dir).as_posix()
                    kind = zipfile.ZIP_STORED if path.suffix.lower() in _STORED else zipfile.ZIP_DEFLATED
                    zf.writestr(arcname, data, compress_type=kind)
                    total += len(data)
                entries.append(record.item_to_json(item, data_dir))
            manifest = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION,
                        "exported": time.time(), "owner": owner, "items": entries}
            zf.writestr(MANIFEST, json.dumps(manifest, indent=1))
        os.replace(tmp, zip_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ExportReport(zip_path, len(entries), total, tuple(skipped))


async def import_library(library: Library, zip_path: str | Path,
                         owner: str | None = None) -> ImportReport:
    """Raises LibraryError when the zip is not a library export; per-item problems are
    reported, not raised."""
    path = Path(zip_path)
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise LibraryError(f"{path} is not a readable zip file ({exc}).") from exc
    with zf:
        entries = await asyncio.to_thread(_read_manifest, zf, path)
        id_map: dict[str, str] = {}
        imported: list[str] = []
        problems: list[str] = []
        present = reassigned = 0
        parsed: list[LibraryItem] = []
        for n, entry in enumerate(entries):
            try:
                parsed.append(record.item_from_json(entry, ZIP_ROOT))
            except ValueError as exc:
                problems.append(f"manifest entry {n}: {exc}")
        for item in sorted(parsed, key=lambda i: i.created):
            target_owner = owner or item.owner
            existing = await library.find_any(item.id)
            if (existing is not None and existing.owner == target_owner
                    and existing.created == item.created):
                id_map[item.id] = item.id
                present += 1
                continue
            new_id = item.id if existing is None else record.new_id()
            reassigned += existing is not None
            parent = None if item.parent_id is None else id_map.get(item.parent_id,
                                                                    item.parent_id)
            try:
                encoded = await asyncio.to_thread(
                    _encode, zf, item, library.data_dir, new_id, target_owner, parent)
                stored = await library.save_encoded(encoded)
            except (ValueError, KeyError, OSError, zipfile.BadZipFile, LibraryError) as exc:
                message = exc.message if isinstance(exc, LibraryError) else str(exc)
                problems.append(f"item {item.id}: {message}")
                continue
            id_map[item.id] = stored.id
            imported.append(stored.id)
    report = ImportReport(tuple(imported), present, reassigned, tuple(problems))
    log.info("library import from %s: %s", path, report.sentence())
    return report


def _read_manifest(zf: zipfile.ZipFile, path: Path) -> list[object]:
    try:
        info = zf.getinfo(MANIFEST)
    except KeyError:
        raise LibraryError(f"{path} is not a library export: it has no {MANIFEST}.") from None
    if info.file_size > MAX_MANIFEST_BYTES:
        raise LibraryError(f"{path}: {MANIFEST} is implausibly large.")
    try:
        data = json.loads(zf.read(info))
    except (ValueError, zipfile.BadZipFile) as exc:
        raise LibraryError(f"{path}: {MANIFEST} does not read back ({exc}).") from exc
    if (not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT
            or not isinstance(data.get("items"), list)):
        raise LibraryError(f"{path} is not a Banana Studio library export.")
    if data.get("version") != EXPORT_VERSION:
        raise LibraryError(f"{path} is a library export of version {data.get('version')}; "
                           f"this studio reads version {EXPORT_VERSION}.")
    items: list[object] = data["items"]
    return items


def _encode(zf: zipfile.ZipFile, item: LibraryItem, data_dir: Path, new_id: str,
            owner: str, parent_id: str | None) -> record.EncodedItem:
    """The item re-homed into this library, its files read from the zip."""
    source_folder = item.result.parent
    names = [p.name for p in item.files]
    if any(p.parent != source_folder for p in item.files):
        raise ValueError("its files are not in one folder")
    if len(set(names)) != len(names) or record.MANIFEST_NAME in names:
        raise ValueError("its file names clash")
    blobs: list[tuple[str, bytes]] = []
    for path in item.files:
        info = zf.getinfo(path.relative_to(ZIP_ROOT).as_posix())    # KeyError: missing
        if info.file_size > MAX_MEMBER_BYTES:
            raise ValueError(f"{path.name} is implausibly large")
        blobs.append((path.name, zf.read(info)))
    folder = files.item_folder(data_dir, new_id, item.created)
    moved = record.relocate(item, source_folder, folder)
    moved = replace(moved, id=new_id, owner=owner, parent_id=parent_id,
                    size_bytes=sum(len(b) for _, b in blobs))
    return record.with_manifest(moved, blobs)

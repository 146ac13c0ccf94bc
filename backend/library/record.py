"""An item in its three stored forms: the database row, the JSON manifest (`item.json` in
its folder, and the export's manifest), and the files a NewItem encodes to.

Paths in a row are relative to the data folder; in a manifest, relative to a base folder
(the item's own folder, or the zip's root). Reading a manifest validates every field: it may
come from a crash or from someone else's zip.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import sqlite3
import string
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import cast

from backend.library import png
from backend.library.models import (
    FLOAT_PARAMS,
    INT_PARAMS,
    SIZE_PARAMS,
    STR_PARAMS,
    SURFACES,
    TEXT_PARAMS,
    InputFile,
    JsonScalar,
    LibraryItem,
    NewItem,
    StoredInput,
    Surface,
)

MANIFEST_NAME = "item.json"
FILES_KEY = "files"     # in item.json: {name: [size, crc32]} of every other file
MANIFEST_FORMAT = "banana-library-item"
MANIFEST_VERSION = 1
THUMB_NAME = "thumb.webp"
ID_ALPHABET = string.ascii_lowercase + string.digits
ID_LENGTH = 12          # 36^12 ≈ 2^62; lower case so case-insensitive file systems agree
ID_PATTERN = re.compile(r"^[a-z0-9]{6,40}$")
_SAFE = re.compile(r"[^A-Za-z0-9_-]+")
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,5}$")

COLUMNS = (
    "id", "owner", "surface", "mode", "created", "prompt", "negative", "region", "seed",
    "width", "height", "steps", "cfg", "variant", "timings", "params", "notes", "starred",
    "parent_id", "result_path", "thumb_path", "inputs", "extras", "size_bytes",
)


def new_id() -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


def safe_name(text: str, limit: int = 40) -> str:
    return _SAFE.sub("-", text).strip("-")[:limit] or "x"


@dataclass(frozen=True)
class EncodedItem:
    """An item ready to be written: its row (paths in its final folder) and its files'
    bytes by name, the manifest last."""

    item: LibraryItem
    blobs: tuple[tuple[str, bytes], ...]

    @property
    def folder(self) -> Path:
        return self.item.result.parent


def encode_new_item(new: NewItem, item_id: str, created: float, folder: Path) -> EncodedItem:
    """PNG, thumbnail, inputs as sent, extras as PNGs, and the manifest (CPU work: run it off
    the event loop)."""
    columns, rest = split_params(new.params)
    width, height = new.image.size
    result_name = f"banana-{safe_name(new.mode)}" + (
        f"-{columns['seed']}" if columns.get("seed") is not None else "") + ".png"
    names = {result_name, THUMB_NAME, MANIFEST_NAME}
    inputs: list[tuple[InputFile, str]] = []
    for n, inp in enumerate(new.inputs, 1):
        suffix = inp.suffix.lower() if _SUFFIX.match(inp.suffix) else ".bin"
        inputs.append((inp, _unique(f"input-{n}-{safe_name(inp.role)}{suffix}", names)))
    extra_names = {k: _unique(f"{safe_name(k)}.png", names) for k in new.extras}
    item = LibraryItem(
        id=item_id, owner=new.owner, surface=new.surface, mode=new.mode, created=created,
        prompt=_opt_str(columns.get("prompt")), negative=_opt_str(columns.get("negative")),
        region=_opt_str(columns.get("region")), seed=_opt_int(columns.get("seed")),
        width=width, height=height, steps=_opt_int(columns.get("steps")),
        cfg=_opt_float(columns.get("cfg")), variant=_opt_str(columns.get("variant")),
        timings={k: float(v) for k, v in new.timings.items()}, params=rest, starred=False,
        parent_id=new.parent_id, notes=tuple(new.notes),
        result=folder / result_name, thumb=folder / THUMB_NAME,
        inputs=tuple(StoredInput(inp.role, folder / name) for inp, name in inputs),
        extras={k: folder / name for k, name in extra_names.items()}, size_bytes=0,
    )
    blobs: list[tuple[str, bytes]] = [
        (result_name, png.png_bytes(new.image, item.parameters, new.workflow)),
        (THUMB_NAME, png.thumbnail_webp(new.image)),
        *((name, inp.data) for inp, name in inputs),
        *((extra_names[k], png.plain_png_bytes(image)) for k, image in new.extras.items()),
    ]
    return with_manifest(replace(item, size_bytes=sum(len(b) for _, b in blobs)), blobs)


def with_manifest(item: LibraryItem, blobs: list[tuple[str, bytes]]) -> EncodedItem:
    """The blobs plus `item.json` (written last, so a folder with it is complete). The
    manifest lists every file's size and CRC-32: the start-up check compares them when the
    OS may not have written the files to the disk before a power cut."""
    data = item_to_json(item, item.result.parent)
    data[FILES_KEY] = {name: [len(blob), zlib.crc32(blob)] for name, blob in blobs}
    manifest = json.dumps(data, indent=1).encode()
    return EncodedItem(item, (*blobs, (MANIFEST_NAME, manifest)))


def manifest_checks(data: object) -> dict[str, tuple[int, int]] | None:
    """{file name: (size, crc32)} from a manifest that has them (None: written before they
    were, or malformed)."""
    if not isinstance(data, dict):
        return None
    raw = data.get(FILES_KEY)
    if not isinstance(raw, dict):
        return None
    checks: dict[str, tuple[int, int]] = {}
    for name, pair in raw.items():
        if not (isinstance(name, str) and isinstance(pair, list) and len(pair) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in pair)):
            return None
        checks[name] = (pair[0], pair[1])
    return checks


def split_params(
    params: Mapping[str, JsonScalar],
) -> tuple[dict[str, JsonScalar], dict[str, JsonScalar]]:
    """(values for the columns keyed by column name, the rest). A value of the wrong type for
    its column stays in the rest, so nothing a surface passed is lost."""
    columns: dict[str, JsonScalar] = {}
    rest: dict[str, JsonScalar] = {}
    for key, value in params.items():
        if not isinstance(value, str | int | float | bool) and value is not None:
            raise TypeError(f"parameter {key!r} is not a JSON scalar: {type(value).__name__}")
        if key == "mode" or key in SIZE_PARAMS:
            continue
        if key in TEXT_PARAMS and isinstance(value, str):
            columns[TEXT_PARAMS[key]] = value
        elif key in INT_PARAMS and isinstance(value, int) and not isinstance(value, bool):
            columns[INT_PARAMS[key]] = value
        elif (key in FLOAT_PARAMS and isinstance(value, int | float)
              and not isinstance(value, bool) and math.isfinite(value)):
            columns[FLOAT_PARAMS[key]] = float(value)
        elif key in STR_PARAMS and isinstance(value, str):
            columns[STR_PARAMS[key]] = value
        elif value is not None or key not in (*TEXT_PARAMS, *INT_PARAMS, *FLOAT_PARAMS,
                                              *STR_PARAMS):
            rest[key] = value
    return columns, rest


# -- the row ------------------------------------------------------------------------------------
def item_to_row(item: LibraryItem, data_dir: Path) -> dict[str, object]:
    def rel(path: Path) -> str:
        return path.relative_to(data_dir).as_posix()

    return {
        "id": item.id, "owner": item.owner, "surface": item.surface, "mode": item.mode,
        "created": item.created, "prompt": item.prompt, "negative": item.negative,
        "region": item.region, "seed": item.seed, "width": item.width, "height": item.height,
        "steps": item.steps, "cfg": item.cfg, "variant": item.variant,
        "timings": json.dumps(dict(item.timings)), "params": json.dumps(dict(item.params)),
        "notes": json.dumps(list(item.notes)), "starred": int(item.starred),
        "parent_id": item.parent_id, "result_path": rel(item.result),
        "thumb_path": rel(item.thumb),
        "inputs": json.dumps([[i.role, rel(i.path)] for i in item.inputs]),
        "extras": json.dumps({k: rel(p) for k, p in item.extras.items()}),
        "size_bytes": item.size_bytes,
    }


def item_from_row(row: sqlite3.Row, data_dir: Path) -> LibraryItem:
    inputs = json.loads(row["inputs"])
    extras = json.loads(row["extras"])
    return LibraryItem(
        id=str(row["id"]), owner=str(row["owner"]), surface=cast(Surface, row["surface"]),
        mode=str(row["mode"]), created=float(row["created"]),
        prompt=_opt_str(row["prompt"]), negative=_opt_str(row["negative"]),
        region=_opt_str(row["region"]), seed=_opt_int(row["seed"]),
        width=int(row["width"]), height=int(row["height"]), steps=_opt_int(row["steps"]),
        cfg=_opt_float(row["cfg"]), variant=_opt_str(row["variant"]),
        timings={str(k): float(v) for k, v in json.loads(row["timings"]).items()},
        params=_scalars(json.loads(row["params"])), starred=bool(row["starred"]),
        parent_id=_opt_str(row["parent_id"]), notes=tuple(str(n) for n in json.loads(row["notes"])),
        result=data_dir / row["result_path"], thumb=data_dir / row["thumb_path"],
        inputs=tuple(StoredInput(str(role), data_dir / path) for role, path in inputs),
        extras={str(k): data_dir / v for k, v in extras.items()},
        size_bytes=int(row["size_bytes"]),
    )


# -- the manifest -------------------------------------------------------------------------------
def item_to_json(item: LibraryItem, base: Path) -> dict[str, object]:
    def rel(path: Path) -> str:
        return path.relative_to(base).as_posix()

    return {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
        "id": item.id, "owner": item.owner, "surface": item.surface, "mode": item.mode,
        "created": item.created, "prompt": item.prompt, "negative": item.negative,
        "region": item.region, "seed": item.seed, "width": item.width, "height": item.height,
        "steps": item.steps, "cfg": item.cfg, "variant": item.variant,
        "timings": dict(item.timings), "params": dict(item.params), "notes": list(item.notes),
        "starred": item.starred, "parent_id": item.parent_id,
        "result": rel(item.result), "thumb": rel(item.thumb),
        "inputs": [[i.role, rel(i.path)] for i in item.inputs],
        "extras": {k: rel(p) for k, p in item.extras.items()},
        "size_bytes": item.size_bytes,
    }


def item_from_json(data: object, base: Path) -> LibraryItem:
    """Raises ValueError naming the first field that is missing or of the wrong type."""
    if not isinstance(data, dict):
        raise ValueError("the manifest is not a JSON object")
    if data.get("format") != MANIFEST_FORMAT or data.get("version") != MANIFEST_VERSION:
        raise ValueError("not a Banana Studio library manifest (format/version)")
    d: dict[str, object] = data

    def get(key: str, kind: type | tuple[type, ...], optional: bool = False) -> object:
        value = d.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
            raise ValueError(f"manifest field {key!r} is missing or has the wrong type")
        return value

    item_id = str(get("id", str))
    if not ID_PATTERN.match(item_id):
        raise ValueError(f"manifest field 'id' is not a library id: {item_id!r}")
    if not d.get("owner"):
        raise ValueError("manifest field 'owner' is empty")
    surface = str(get("surface", str))
    if surface not in SURFACES:
        raise ValueError(f"manifest field 'surface' is unknown: {surface!r}")
    inputs_raw = get("inputs", list)
    extras_raw = get("extras", dict)
    assert isinstance(inputs_raw, list) and isinstance(extras_raw, dict)
    inputs: list[StoredInput] = []
    for entry in inputs_raw:
        if not (isinstance(entry, list) and len(entry) == 2
                and all(isinstance(x, str) for x in entry)):
            raise ValueError("manifest field 'inputs' is malformed")
        inputs.append(StoredInput(entry[0], base / _relative(entry[1])))
    extras: dict[str, Path] = {}
    for key, value in extras_raw.items():
        if not isinstance(value, str):
            raise ValueError("manifest field 'extras' is malformed")
        extras[str(key)] = base / _relative(value)
    timings = get("timings", dict)
    params = get("params", dict)
    notes = get("notes", list)
    assert isinstance(timings, dict) and isinstance(params, dict) and isinstance(notes, list)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in timings.values()):
        raise ValueError("manifest field 'timings' is malformed")
    cfg = get("cfg", (int, float), optional=True)
    parent = get("parent_id", str, optional=True)
    if parent is not None and not ID_PATTERN.match(str(parent)):
        parent = None
    return LibraryItem(
        id=item_id, owner=str(get("owner", str)), surface=surface,
        mode=str(get("mode", str)), created=float(cast(float, get("created", (int, float)))),
        prompt=_opt_str(get("prompt", str, True)), negative=_opt_str(get("negative", str, True)),
        region=_opt_str(get("region", str, True)), seed=_opt_int(get("seed", int, True)),
        width=int(cast(int, get("width", int))), height=int(cast(int, get("height", int))),
        steps=_opt_int(get("steps", int, True)), cfg=None if cfg is None else float(cast(float, cfg)),
        variant=_opt_str(get("variant", str, True)),
        timings={str(k): float(v) for k, v in timings.items()}, params=_scalars(params),
        notes=tuple(str(n) for n in notes), starred=bool(get("starred", bool)),
        parent_id=_opt_str(parent),
        result=base / _relative(str(get("result", str))),
        thumb=base / _relative(str(get("thumb", str))),
        inputs=tuple(inputs), extras=extras,
        size_bytes=int(cast(int, get("size_bytes", int))),
    )


def relocate(item: LibraryItem, old_base: Path, new_base: Path) -> LibraryItem:
    """The same item with its files under another folder."""
    def move(path: Path) -> Path:
        return new_base / path.relative_to(old_base)

    return replace(
        item, result=move(item.result), thumb=move(item.thumb),
        inputs=tuple(StoredInput(i.role, move(i.path)) for i in item.inputs),
        extras={k: move(p) for k, p in item.extras.items()},
    )


def _relative(text: str) -> PurePosixPath:
    path = PurePosixPath(text)
    if path.is_absolute() or not path.parts or any(p in ("..", ".", "") for p in path.parts) \
            or "\\" in text:
        raise ValueError(f"manifest path is not a plain relative path: {text!r}")
    return path


def _unique(name: str, used: set[str]) -> str:
    stem, dot, suffix = name.rpartition(".")
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}-{n}{dot}{suffix}"
    used.add(candidate)
    return candidate


def _scalars(data: Mapping[object, object]) -> dict[str, JsonScalar]:
    out: dict[str, JsonScalar] = {}
    for k, v in data.items():
        if isinstance(v, str | int | float | bool) or v is None:
            out[str(k)] = v
    return out


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: object) -> int | None:
    return None if value is None else int(cast(int, value))


def _opt_float(value: object) -> float | None:
    return None if value is None else float(cast(float, value))

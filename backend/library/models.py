"""The library's values: what a surface hands in, what comes back, and the reports.

Frozen dataclasses only; no I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from PIL import Image

JsonScalar = str | int | float | bool | None
Surface = Literal["ui", "api", "chat", "cli"]
SURFACES: tuple[Surface, ...] = ("ui", "api", "chat", "cli")

# Parameters that have their own column (key in the params mapping → column). Everything
# else a surface passes is kept as JSON in `params`; `parameters` puts them back together.
TEXT_PARAMS = {"prompt": "prompt", "negative_prompt": "negative", "region": "region"}
INT_PARAMS = {"seed": "seed", "steps": "steps"}
FLOAT_PARAMS = {"cfg": "cfg"}
STR_PARAMS = {"variant": "variant"}
# Recomputed from the stored image; never trusted from params.
SIZE_PARAMS = ("width", "height")


class LibraryError(Exception):
    """Something went wrong with the library; `message` is a sentence for people."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class LibrarySaveError(LibraryError):
    """The result was not stored (disk full, read-only folder…); no partial files are left.
    The caller still shows the result, with `message` as a warning."""


@dataclass(frozen=True)
class InputFile:
    """An input exactly as it was sent (never re-encoded): `role` e.g. "image", "image2";
    `suffix` e.g. ".jpg" (anything odd is stored as ".bin")."""

    role: str
    data: bytes
    suffix: str


@dataclass(frozen=True)
class NewItem:
    owner: str
    surface: Surface
    mode: str
    image: Image.Image
    params: Mapping[str, JsonScalar] = field(default_factory=dict)
    workflow: Mapping[str, object] | None = None
    inputs: Sequence[InputFile] = ()
    extras: Mapping[str, Image.Image] = field(default_factory=dict)    # e.g. {"mask": L image}
    timings: Mapping[str, float] = field(default_factory=dict)
    parent_id: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoredInput:
    role: str
    path: Path


@dataclass(frozen=True)
class LibraryItem:
    """One row, with its files as absolute paths."""

    id: str
    owner: str
    surface: Surface
    mode: str
    created: float                      # epoch seconds
    prompt: str | None
    negative: str | None
    region: str | None
    seed: int | None
    width: int
    height: int
    steps: int | None
    cfg: float | None
    variant: str | None
    timings: Mapping[str, float]
    params: Mapping[str, JsonScalar]    # the parameters without a column of their own
    starred: bool
    parent_id: str | None
    notes: tuple[str, ...]
    result: Path                        # the PNG (parameters + graph in its text chunks)
    thumb: Path                         # WebP, ~320 px
    inputs: tuple[StoredInput, ...]
    extras: Mapping[str, Path]
    size_bytes: int                     # all of its files

    @property
    def parameters(self) -> dict[str, JsonScalar]:
        """Every parameter, as the PNG's `parameters` chunk carries them (restore uses it)."""
        out: dict[str, JsonScalar] = {"mode": self.mode}
        columns: dict[str, JsonScalar] = {
            "prompt": self.prompt, "negative_prompt": self.negative, "region": self.region,
            "seed": self.seed, "steps": self.steps, "cfg": self.cfg, "variant": self.variant,
        }
        out.update({k: v for k, v in columns.items() if v is not None})
        out.update(self.params)
        out["width"], out["height"] = self.width, self.height
        return out

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.result, self.thumb, *(i.path for i in self.inputs), *self.extras.values())


@dataclass(frozen=True)
class ItemQuery:
    """A page of one owner's items, newest first. Filters combine (AND). `text` matches
    words (prefixes) of the prompt and region text, and of the negative prompt too when
    `include_negative`. Page with `before` (the previous page's `next_cursor`: smooth at any
    depth) or `offset` (jump to page N; cost grows with N)."""

    text: str = ""
    mode: str | None = None
    since: float | None = None          # created >= since
    until: float | None = None          # created < until
    starred: bool | None = None
    before: str | None = None
    offset: int = 0
    limit: int = 48
    include_negative: bool = False
    count_total: bool = True


@dataclass(frozen=True)
class ItemPage:
    items: tuple[LibraryItem, ...]
    next_cursor: str | None             # None on the last page
    total: int | None                   # matching items (None when not counted)


@dataclass(frozen=True)
class Lineage:
    item: LibraryItem
    ancestors: tuple[LibraryItem, ...]  # parent first, then its parent…
    children: tuple[LibraryItem, ...]   # oldest first


@dataclass(frozen=True)
class PruneReport:
    removed: tuple[str, ...] = ()
    freed_bytes: int = 0
    by_age: int = 0
    by_size: int = 0
    over_budget: bool = False           # still above max size: only starred items are left

    def sentence(self) -> str:
        if not self.removed:
            return "Nothing to prune." + (
                " The library is over its size limit, but only starred items are left."
                if self.over_budget else "")
        return (f"Pruned {len(self.removed)} items ({self.by_age} by age, {self.by_size} by "
                f"size), freed {self.freed_bytes / 1e6:.1f} MB.")


@dataclass(frozen=True)
class StartupReport:
    """What `open()` found and did."""

    data_dir: Path
    schema_version: int
    migrated_from: int
    items: int
    integrity: str                          # "ok" or SQLite's first complaint
    adopted: tuple[str, ...] = ()           # complete folders without a row (crash after rename)
    partial_removed: int = 0                # folders of saves that never finished
    deletes_finished: tuple[str, ...] = ()  # deletes interrupted by a crash
    set_aside: tuple[Path, ...] = ()        # unreadable folders moved to lost+found
    rows_removed: tuple[str, ...] = ()      # rows whose result PNG is gone (or damaged)
    thumbs_rebuilt: tuple[str, ...] = ()
    files_missing: tuple[str, ...] = ()     # rows kept, an input or extra is gone (dropped)
    verified: int = 0                       # saved but unsynced items checked whole
    pruned: PruneReport = PruneReport()
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return (self.integrity == "ok" and not self.adopted and not self.partial_removed
                and not self.deletes_finished and not self.set_aside and not self.rows_removed
                and not self.thumbs_rebuilt and not self.files_missing)

    def lines(self) -> list[str]:
        out = [f"Library at {self.data_dir}: {self.items} items, schema v{self.schema_version}"
               + (f" (migrated from v{self.migrated_from})"
                  if self.migrated_from != self.schema_version else "")
               + f", integrity {self.integrity}, checked in {self.seconds * 1000:.0f} ms."]
        if self.adopted:
            out.append(f"Recovered {len(self.adopted)} items saved just before a crash.")
        if self.partial_removed:
            out.append(f"Removed {self.partial_removed} unfinished saves.")
        if self.deletes_finished:
            out.append(f"Finished {len(self.deletes_finished)} interrupted deletes.")
        if self.set_aside:
            out.append(f"Moved {len(self.set_aside)} unreadable folders to lost+found.")
        if self.rows_removed:
            out.append(f"Dropped {len(self.rows_removed)} items whose PNG is missing or "
                       "damaged: " + ", ".join(self.rows_removed[:10]))
        if self.verified:
            out.append(f"Checked {self.verified} items saved just before the last stop: "
                       "their files are whole.")
        if self.thumbs_rebuilt:
            out.append(f"Rebuilt {len(self.thumbs_rebuilt)} missing thumbnails.")
        if self.files_missing:
            out.append(f"{len(self.files_missing)} items lost an input or mask file: "
                       + ", ".join(self.files_missing[:10]))
        if self.pruned.removed:
            out.append(self.pruned.sentence())
        return out

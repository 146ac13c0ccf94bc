"""(g) The library: what saving a result adds to a job, and listing/search at 10,000 items.

`python -m bench.library` (standalone: no ComfyUI, no fake). `run(fake)` fits bench/__main__'s
sections (the fake is not used) and returns a LibraryBench whose `summary()` is the line to
add to the final summary.

Saving: a 1024² result that compresses like a real one (gradients, texture and noise: a
~2 MB PNG) with one 1024² JPEG input as sent; each part timed on its own, then the whole
`library.save()` through the async API, in a library that already holds 10,000 items. The
PNG and the thumbnail were encoded before the library too (the UI's old ResultStore wrote both,
and re-encoded each input as a PNG, which the library does not), so what the library ADDS to a
job is the rest: the writes, the rename and the commit. The fsyncs run afterwards on the
library's sync thread (timed on their own, and the old fsync-before-rename step for
comparison).

Listing and search: 10,000 items of one owner (plus 1,000 of another) with prompts drawn
from a 2,000-word vocabulary, through `library.page()` (includes the hop to the reader thread).
"""

from __future__ import annotations

import asyncio
import functools
import io
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from backend.library import (
    InputFile,
    ItemQuery,
    JsonScalar,
    Library,
    LibraryConfig,
    NewItem,
    db,
    files,
    png,
)
from backend.library.models import LibraryItem
from backend.library.record import COLUMNS, encode_new_item, item_to_row, new_id
from bench.common import Stats, load_average, machine_lines, quiet_logs

ITEMS = 10_000
OTHER_OWNER_ITEMS = 1_000
SAVES = 12
QUERY_RUNS = 30
OWNER = "user:bench"
MODES = ("generate", "edit", "inpaint", "region_edit", "outpaint", "multiref",
         "remove_background")


@dataclass
class LibraryBench:
    parts: dict[str, Stats] = field(default_factory=dict)    # save parts, ms
    queries: dict[str, Stats] = field(default_factory=dict)  # page/search, ms
    matches: dict[str, int] = field(default_factory=dict)    # how many items each query found
    png_mb: float = 0.0
    open_ms: float = 0.0
    owns_file_us: float = 0.0

    @property
    def added_ms(self) -> float:
        return self.parts["ADDED: files + db commit"].median

    @property
    def page_ms(self) -> float:
        return max(s.median for k, s in self.queries.items() if k.startswith("page"))

    @property
    def search_ms(self) -> float:
        return max(s.median for k, s in self.queries.items() if k.startswith("search"))

    def lines(self) -> list[str]:
        out = [f"  save of a 1024² result ({self.png_mb:.1f} MB PNG) + a 1024² JPEG input, "
               f"into a library of {ITEMS:,} items:"]
        out += [stats.line(name) for name, stats in self.parts.items()]
        out.append(f"  list and search, {ITEMS:,} items of one owner "
                   f"(+{OTHER_OWNER_ITEMS:,} of another), 48 a page:")
        out += [stats.line(f"{name} [{self.matches[name]}]") for name, stats in
                self.queries.items()]
        out.append(f"  open() at {ITEMS + OTHER_OWNER_ITEMS:,} items (migrations, integrity, "
                   f"start-up check of every folder): {self.open_ms:.0f} ms")
        out.append(f"  owns_file (a file route's check): {self.owns_file_us:.0f} µs")
        return out

    def summary(self) -> str:
        return (f"library_added_ms={self.added_ms:.1f} "
                f"library_db_ms={self.parts['db commit (insert_item)'].median:.1f} "
                f"library_page_ms={self.page_ms:.1f} library_search_ms={self.search_ms:.1f}")


def photo_like(size: int, seed: int) -> Image.Image:
    """Compresses like a diffusion result: smooth light, some texture, a little noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    channels = []
    for c in range(3):
        base = 128 + 90 * np.sin(3 * x + 2 * y + c) * np.cos(2 * y - c)
        texture = 18 * np.sin(40 * x * (c + 1)) * np.sin(35 * y)
        channels.append(base + texture + rng.normal(0, 4, (size, size)))
    return Image.fromarray(np.clip(np.stack(channels, -1), 0, 255).astype(np.uint8))


def vocabulary(rng: random.Random, n: int = 2000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = {"castle", "portrait", "forest", "lighthouse", "dragon", "city", "night"}
    while len(words) < n:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 9))))
    return sorted(words)


def prompt_of(rng: random.Random, words: list[str]) -> str:
    # a few common words, the rest from a long tail (Zipf-like), as prompts are
    picks = [words[min(int(rng.paretovariate(1.0)) - 1, len(words) - 1)]
             for _ in range(rng.randint(8, 25))]
    return " ".join(picks)


def populate(data_dir: Path, count: int, owner: str, rng: random.Random,
             words: list[str], start: float) -> None:
    """Rows + tiny real files (the start-up check looks at every folder), in bulk: one
    transaction, no fsync. The bench measures the library at this size, not this filling."""
    tiny = png.png_bytes(Image.new("RGB", (8, 8)), {"mode": "generate"})
    thumb = png.thumbnail_webp(Image.new("RGB", (8, 8)))
    conn = db.connect(data_dir / files.DB_NAME)
    rows = []
    for n in range(count):
        created = start + n * 60.0 + rng.random()
        item_id = new_id()
        folder = files.item_folder(data_dir, item_id, created)
        folder.mkdir(parents=True)
        (folder / "result.png").write_bytes(tiny)
        (folder / "thumb.webp").write_bytes(thumb)
        mode = rng.choice(MODES)
        item = LibraryItem(
            id=item_id, owner=owner, surface="ui", mode=mode, created=created,
            prompt=prompt_of(rng, words), negative="blurry, low quality" if n % 3 else None,
            region="the " + rng.choice(words) if mode == "region_edit" else None,
            seed=rng.randrange(2**32), width=1024, height=1024, steps=20, cfg=2.5,
            variant=None, timings={"total_s": 12.0}, params={}, starred=n % 50 == 0,
            parent_id=None, notes=(), result=folder / "result.png", thumb=folder / "thumb.webp",
            inputs=(), extras={}, size_bytes=len(tiny) + len(thumb))
        rows.append(item_to_row(item, data_dir))
    marks = ", ".join(f":{c}" for c in COLUMNS)
    conn.execute("BEGIN")
    conn.executemany(f"INSERT INTO items ({', '.join(COLUMNS)}) VALUES ({marks})", rows)
    conn.execute("COMMIT")
    conn.close()


async def timed(work: Callable[[], Awaitable[object]], runs: int) -> Stats:
    values = []
    for _ in range(runs):
        started = time.perf_counter()
        await work()
        values.append((time.perf_counter() - started) * 1000)
    return Stats.of(values)


def timed_sync(work: Callable[[], object], runs: int) -> Stats:
    values = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        values.append((time.perf_counter() - started) * 1000)
    return Stats.of(values)


async def run(fake: object = None) -> LibraryBench:
    result = LibraryBench()
    rng = random.Random(5)
    words = vocabulary(rng)
    root = Path(tempfile.mkdtemp(prefix="bench-library-", dir=Path.cwd()))
    try:
        data = root / "data"
        config = LibraryConfig(data_dir=data)
        library = Library(config)
        await library.open()                 # the schema
        await library.close()
        start = time.time() - (ITEMS + 10) * 60.0
        populate(data, ITEMS, OWNER, rng, words, start)
        populate(data, OTHER_OWNER_ITEMS, "user:other", rng, words, start + 30.0)

        library = Library(config)
        report = await library.open()
        result.open_ms = report.seconds * 1000
        try:
            await measure_save(library, result)
            await measure_queries(library, result)
            item = (await library.page(OWNER, ItemQuery(limit=1))).items[0]
            result.owns_file_us = timed_sync(
                lambda: library.owns_file(OWNER, item.thumb), 200).median * 1000
        finally:
            await library.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("\n".join(result.lines()), flush=True)
    return result


def fsynced_write(folder: Path, blobs: tuple[tuple[str, bytes], ...]) -> None:
    """The save's file step as it was before the sync moved off the job's path: every file
    and the folder fsynced before the rename, the month folder after (for the comparison)."""
    month = folder.parent
    partial = month / f"{files.PARTIAL_PREFIX}bench-{folder.name}"
    partial.mkdir()
    for name, data in blobs:
        files.write_file(partial / name, data)
    files.sync_files([partial / name for name, _ in blobs])
    files.fsync_dir(partial)
    os.rename(partial, folder)
    files.fsync_dir(month)


async def measure_save(library: Library, result: LibraryBench) -> None:
    image = photo_like(1024, 1)
    jpeg = io.BytesIO()
    photo_like(1024, 2).save(jpeg, format="JPEG", quality=90)
    sent = jpeg.getvalue()
    params: dict[str, JsonScalar] = {"mode": "edit", "prompt": "a castle at night, oil painting",
                                     "seed": 1, "steps": 20, "cfg": 2.5, "width": 1024,
                                     "height": 1024}
    workflow = {str(n): {"class_type": "Node", "inputs": {"x": n}} for n in range(30)}

    def new() -> NewItem:
        return NewItem(OWNER, "ui", "edit", image, params, workflow,
                       (InputFile("image", sent, ".jpg"),), {}, {"total_s": 12.0})

    def today(folder: Path) -> None:
        """What the UI's old per-session ResultStore wrote for the same job before the library
        (an input re-encoded as PNG, the result PNG, a WebP thumbnail)."""
        folder.mkdir(parents=True, exist_ok=True)
        Image.open(io.BytesIO(sent)).convert("RGB").save(folder / "input-edit.png",
                                                         compress_level=3)
        (folder / "result.png").write_bytes(png.png_bytes(image, params, workflow))
        thumb = image.copy()
        thumb.thumbnail((320, 320), Image.Resampling.LANCZOS)
        thumb.save(folder / "thumb.webp", format="WEBP", quality=82)

    names = ("png encode (paid today too)", "thumbnail (paid today too)",
             "files: write, rename", "db commit (insert_item)",
             "ADDED: files + db commit", "library.save() total", "today's ResultStore, same job",
             "background fsync (off the job's path)",
             "(before: files fsynced, then renamed)")
    parts: dict[str, list[float]] = {k: [] for k in names}
    conn = db.connect(library.db_path)
    store = library.data_dir.parent / "today"
    for n in range(SAVES + 1):
        t0 = time.perf_counter()
        png_data = png.png_bytes(image, params, workflow)
        t1 = time.perf_counter()
        png.thumbnail_webp(image)
        t2 = time.perf_counter()
        result.png_mb = len(png_data) / 1e6

        item_id, created = new_id(), time.time()
        encoded = encode_new_item(new(), item_id, created,
                                  files.item_folder(library.data_dir, item_id, created))
        t3 = time.perf_counter()
        files.write_item_folder(encoded.folder, encoded.blobs)
        t4 = time.perf_counter()
        db.insert_item(conn, encoded.item, library.data_dir, synced=False)
        t5 = time.perf_counter()
        files.sync_item_folder(encoded.folder)      # what the sync thread does afterwards
        t5b = time.perf_counter()
        await library.save(new())
        t6 = time.perf_counter()
        today(store)
        t7 = time.perf_counter()
        before_id = new_id()
        before = encode_new_item(new(), before_id, created,
                                 files.item_folder(library.data_dir, before_id, created))
        t8 = time.perf_counter()
        fsynced_write(before.folder, before.blobs)
        t9 = time.perf_counter()
        if n == 0:
            continue        # warm-up round: first-touch costs (imports, page cache)
        for name, ms in zip(names, (t1 - t0, t2 - t1, t4 - t3, t5 - t4, t5 - t3, t6 - t5b,
                                    t7 - t6, t5b - t5, t9 - t8), strict=True):
            parts[name].append(ms * 1000)
    conn.close()
    result.parts = {k: Stats.of(v) for k, v in parts.items()}


async def measure_queries(library: Library, result: LibraryBench) -> None:
    first = await library.page(OWNER, ItemQuery())
    cursor = first.next_cursor
    for _ in range(99):         # walk to page 100 by cursor, as a scrolling gallery does
        cursor = (await library.page(OWNER, ItemQuery(before=cursor, count_total=False))
                  ).next_cursor
    words = vocabulary(random.Random(5))
    common = words[0]           # prompt_of draws the first words most often
    rare = next(w for w in reversed(words) if len(w) > 5)
    queries: dict[str, ItemQuery] = {
        "page 1": ItemQuery(),
        "page 100 (cursor)": ItemQuery(before=cursor),
        "page 100 (offset)": ItemQuery(offset=99 * 48),
        "page, mode filter": ItemQuery(mode="inpaint"),
        "page, starred": ItemQuery(starred=True),
        "page, last 7 days": ItemQuery(since=time.time() - 7 * 86400),
        "search commonest word": ItemQuery(text=common),
        "search common word": ItemQuery(text="castle"),
        "search rare word": ItemQuery(text=rare),
        "search two words": ItemQuery(text="castle night"),
        "search prefix 'ca'": ItemQuery(text="ca"),
        "search + mode": ItemQuery(text="castle", mode="edit"),
        "search, next page": ItemQuery(text="castle", before=None),
    }
    castle = await library.page(OWNER, ItemQuery(text="castle"))
    queries["search, next page"] = ItemQuery(text="castle", before=castle.next_cursor)
    for name, query in queries.items():
        page = await library.page(OWNER, query)
        result.matches[name] = page.total or 0
        result.queries[name] = await timed(functools.partial(library.page, OWNER, query),
                                           QUERY_RUNS)


def main() -> int:
    quiet_logs()
    print("Banana Studio library benchmark")
    print("\n".join(machine_lines()))
    print(f"  load average at start: {load_average()}")
    bench = asyncio.run(run())
    print(bench.summary(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())



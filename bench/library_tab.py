"""The Library tab at 10,000 items, through its handlers' code (ui/library_tab.listing and
the open picture's HTML): page 1, page 100 by cursor, a search, a filter, opening one.

    .venv/bin/python -m bench.library_tab
"""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

from backend.library import Library, LibraryConfig
from backend.modes import REGISTRY
from bench.common import Stats, quiet_logs
from bench.library import ITEMS, OWNER, populate, timed, vocabulary
from ui.library_tab import Browse, Filters, listing, url_maker
from ui.library_view import detail_html, info_html

RUNS = 30


async def run() -> dict[str, Stats]:
    rng = random.Random(5)
    words = vocabulary(rng)
    root = Path(tempfile.mkdtemp(prefix="bench-library-tab-", dir=Path.cwd()))
    out: dict[str, Stats] = {}
    try:
        config = LibraryConfig(data_dir=root / "data")
        library = Library(config)
        await library.open()
        await library.close()
        populate(config.data_dir, ITEMS, OWNER, rng, words, time.time() - (ITEMS + 10) * 60.0)
        library = Library(config)
        await library.open()
        shared = SimpleNamespace(ctx=SimpleNamespace(library=library, registry=REGISTRY))
        try:
            deep = Browse()
            for _ in range(99):             # "Older →" 99 times
                deep = (await listing(shared, OWNER, deep))[0]  # type: ignore[arg-type]
                deep = replace(deep, index=deep.index + 1)
            cases = {
                "page 1": Browse(),
                "page 100 (Older → ×99)": deep,
                "search 'castle'": Browse(Filters(text="castle")),
                "search two words": Browse(Filters(text="castle night")),
                "mode + last 7 days": Browse(Filters(mode="edit", date="Last 7 days")),
                "starred": Browse(Filters(starred=True)),
            }
            for name, browse in cases.items():
                out[name] = await timed(
                    lambda b=browse: listing(shared, OWNER, b), RUNS)  # type: ignore[misc]
            item_id = (await library.page(OWNER, Filters().query(None, time.time()))).items[0].id
            url_of = url_maker(shared, OWNER)  # type: ignore[arg-type]

            async def open_one() -> None:
                lineage = await library.lineage(OWNER, item_id)
                assert lineage is not None
                detail_html(lineage.item, url_of, str)
                info_html(lineage, url_of, str)

            out["open one (lineage + HTML)"] = await timed(open_one, RUNS)
        finally:
            await library.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out


def main() -> int:
    quiet_logs()
    print(f"Library tab handlers, {ITEMS:,} items, {RUNS} runs each (ms):")
    for name, stats in asyncio.run(run()).items():
        print(f"  {name:28s} median {stats.median:6.1f}  p90 {stats.p90:6.1f}  max {stats.maximum:6.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

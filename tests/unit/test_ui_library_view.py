"""The Library tab's HTML and filters (ui/library_view.py, ui/library_tab.Filters): what a
person typed never becomes markup, lineage chips open their picture, dates and modes map to
the library's query."""

from __future__ import annotations

import time
from pathlib import Path

from backend.library import LibraryItem, Lineage
from ui.library_tab import ALL_MODES, Filters, since
from ui.library_view import detail_html, grid_html, info_html

NASTY = "<img src=x onerror=alert(1)> 'quoted' \"double\" & more"


def item(item_id: str, prompt: str = "a lighthouse", starred: bool = False,
         parent: str | None = None) -> LibraryItem:
    folder = Path("/data/library/2026-12") / item_id
    return LibraryItem(
        id=item_id, owner="user:ann", surface="ui", mode="generate", created=1_780_000_000.0,
        prompt=prompt, negative=None, region=None, seed=7, width=64, height=48, steps=4,
        cfg=2.5, variant=None, timings={"total_s": 1.5}, params={"sampler": NASTY},
        starred=starred, parent_id=parent, notes=(), result=folder / "result.png",
        thumb=folder / "thumb.webp", inputs=(), extras={}, size_bytes=10)


def url_of(path: Path, download: bool) -> str:
    return f"/library/file/g/{path.parent.name}/{path.name}" + ("?download=1" if download else "")


def test_prompts_and_parameters_are_text_never_markup() -> None:
    one = item("aaaaaaaaaaaa", NASTY)
    pages = [grid_html([one], url_of, str, None, "empty"),
             detail_html(one, url_of, str), info_html(Lineage(one, (), ()), url_of, str)]
    for page in pages:
        assert "<img src=x" not in page and "onerror=alert(1)>" not in page
        assert "'quoted'" not in page       # attribute values are quoted with '
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages[1]


def test_cards_and_lineage_chips_carry_their_ids_and_owner_urls() -> None:
    parent, child = item("parent000001"), item("child0000001", parent="parent000001")
    me = item("middle000001", starred=True, parent="parent000001")
    grid = grid_html([me, parent], url_of, str, "middle000001", "empty")
    assert grid.count("class='lib-card") == 2
    assert "class='lib-card selected' data-item='middle000001'" in grid
    assert "lib-star" in grid and "/library/file/g/middle000001/thumb.webp" in grid
    info = info_html(Lineage(me, (parent,), (child,)), url_of, str)
    assert "id='library-made-from'" in info and "data-item='parent000001'" in info
    assert "id='library-made-with'" in info and "data-item='child0000001'" in info
    detail = detail_html(me, url_of, str)
    assert "/library/file/g/middle000001/result.png?download=1" in detail
    assert grid_html([], url_of, str, None, "No pictures yet.").count("No pictures yet.") == 1


def test_filters_become_the_librarys_query() -> None:
    now = time.time()
    query = Filters().query(None, now)
    assert (query.text, query.mode, query.since, query.starred) == ("", None, None, None)
    query = Filters(" castle ", "edit", "Last 7 days", True).query("cursor", now)
    assert (query.text, query.mode, query.starred, query.before) == ("castle", "edit", True,
                                                                     "cursor")
    assert query.since == now - 7 * 86400
    midnight = since("Today", now)
    assert midnight is not None and 0 <= now - midnight < 86400 + 3600
    assert time.localtime(midnight)[3:6] == (0, 0, 0)
    assert Filters(mode=ALL_MODES).query(None, now).mode is None

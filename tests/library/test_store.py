"""Saving, reading back, listing, searching, paging, filters, stars, deletes, lineage."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable

import pytest
from PIL import Image

from backend.library import InputFile, ItemQuery, Library, LibraryItem, png
from tests.library.conftest import Clock, jpeg_bytes, new_item


async def test_save_writes_files_and_row(library: Library) -> None:
    sent = jpeg_bytes()
    item = await library.save(new_item(
        prompt="a red castle", params={"negative_prompt": "blurry", "grow": 8, "variant": "turbo"},
        inputs=(InputFile("image", sent, ".jpg"),), mask=True))

    assert item.owner == "alice" and item.surface == "ui" and item.mode == "generate"
    assert (item.prompt, item.negative, item.seed, item.steps, item.cfg, item.variant) == (
        "a red castle", "blurry", 7, 20, 2.5, "turbo")
    assert (item.width, item.height) == (48, 32)
    assert item.params == {"grow": 8}
    assert item.timings == {"total_s": 1.25} and item.notes == ("scaled to 1 MP",)
    for path in item.files:
        assert path.is_file() and path.is_relative_to(library.data_dir)
    # the input is kept exactly as sent, not re-encoded
    assert item.inputs[0].role == "image" and item.inputs[0].path.suffix == ".jpg"
    assert item.inputs[0].path.read_bytes() == sent
    assert Image.open(item.extras["mask"]).mode == "L"
    with Image.open(item.thumb) as thumb:
        assert thumb.format == "WEBP"
    assert item.size_bytes == sum(p.stat().st_size for p in item.files)
    assert await library.get("alice", item.id) == item


async def test_result_png_carries_parameters_and_graph_for_restore(library: Library) -> None:
    from backend.modes import REGISTRY

    item = await library.save(new_item(prompt="a red castle", params={"grow": 8}))
    params = png.read_parameters(item.result, REGISTRY.parameter_names())  # a dropped PNG
    assert params == {"mode": "generate", "prompt": "a red castle", "seed": 7, "steps": 20,
                      "cfg": 2.5, "grow": 8, "width": 48, "height": 32}
    assert png.read_workflow(item.result) == {
        "3": {"class_type": "KSampler", "inputs": {"seed": 7}}}
    assert item.parameters == params


async def test_paths_in_the_database_are_relative(library: Library) -> None:
    item = await library.save(new_item(inputs=(InputFile("image", b"x", ".png"),), mask=True))
    conn = sqlite3.connect(library.db_path)
    result, thumb, inputs, extras = conn.execute(
        "SELECT result_path, thumb_path, inputs, extras FROM items WHERE id = ?",
        (item.id,)).fetchone()
    conn.close()
    assert result == item.result.relative_to(library.data_dir).as_posix()
    assert not result.startswith("/") and not thumb.startswith("/")
    assert all(not p.startswith("/") for _, p in json.loads(inputs))
    assert all(not p.startswith("/") for p in json.loads(extras).values())


async def test_odd_suffixes_and_roles_are_made_safe(library: Library) -> None:
    item = await library.save(new_item(
        inputs=(InputFile("../../etc", b"a", ".png/../x"), InputFile("image", b"b", ".WEBP"))))
    names = [i.path.name for i in item.inputs]
    assert names == ["input-1-etc.bin", "input-2-image.webp"]
    assert all(i.path.parent == item.result.parent for i in item.inputs)


async def test_page_is_newest_first_with_keyset_cursor(library: Library) -> None:
    saved = [await library.save(new_item(prompt=f"picture {n}")) for n in range(7)]
    seen: list[LibraryItem] = []
    cursor = None
    while True:
        page = await library.page("alice", ItemQuery(before=cursor, limit=3))
        assert page.total == 7
        seen += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [i.id for i in seen] == [i.id for i in reversed(saved)]
    # offset paging gives the same pages
    second = await library.page("alice", ItemQuery(offset=3, limit=3))
    assert [i.id for i in second.items] == [i.id for i in seen[3:6]]


async def test_a_new_item_does_not_shift_keyset_pages(library: Library) -> None:
    for n in range(5):
        await library.save(new_item(prompt=f"p{n}"))
    first = await library.page("alice", ItemQuery(limit=2))
    await library.save(new_item(prompt="newer"))
    second = await library.page("alice", ItemQuery(limit=2, before=first.next_cursor))
    assert [i.prompt for i in first.items + second.items] == ["p4", "p3", "p2", "p1"]


async def test_bad_cursor_is_a_value_error(library: Library) -> None:
    with pytest.raises(ValueError):
        await library.page("alice", ItemQuery(before="nonsense"))


async def test_search_by_words_of_the_prompt(library: Library) -> None:
    castle = await library.save(new_item(prompt="A red Castle on a hill"))
    await library.save(new_item(prompt="a blue lake"))
    region = await library.save(new_item(mode="region_edit", prompt="",
                                         params={"region": "the castle door"}))
    neg = await library.save(new_item(prompt="a forest", params={"negative_prompt": "castle"}))
    cafe = await library.save(new_item(prompt="Café terrace at night"))

    async def ids(text: str, **kw: object) -> set[str]:
        page = await library.page("alice", ItemQuery(text=text, **kw))
        return {i.id for i in page.items}

    assert await ids("castle") == {castle.id, region.id}
    assert await ids("cast") == {castle.id, region.id}          # prefixes
    assert await ids("red castle") == {castle.id}              # every word
    assert await ids("castle", include_negative=True) == {castle.id, region.id, neg.id}
    assert await ids("cafe") == {cafe.id}                       # diacritics folded
    assert await ids("nothing") == set()
    # FTS syntax is plain text, never an error
    assert await ids('castle" OR "lake') == set()
    assert await ids('NEAR( ( * ^ -') == set()
    assert len(await ids("   ")) == 5                          # no words: no text filter


async def test_filters_combine(library: Library, clock: Clock) -> None:
    a = await library.save(new_item(prompt="cat one", mode="generate"))
    b = await library.save(new_item(prompt="cat two", mode="edit"))
    middle = clock.now + 0.0005
    c = await library.save(new_item(prompt="dog three", mode="edit"))
    await library.set_star("alice", b.id, True)

    async def ids(**kw: object) -> list[str]:
        return [i.id for i in (await library.page("alice", ItemQuery(**kw))).items]

    assert await ids(mode="edit") == [c.id, b.id]
    assert await ids(starred=True) == [b.id]
    assert await ids(starred=False) == [c.id, a.id]
    assert await ids(since=middle) == [c.id]
    assert await ids(until=middle) == [b.id, a.id]
    assert await ids(mode="edit", text="cat") == [b.id]
    assert await ids(mode="edit", text="cat", starred=False) == []
    page = await library.page("alice", ItemQuery(mode="edit", count_total=False))
    assert page.total is None


async def test_star_and_unstar(library: Library) -> None:
    item = await library.save(new_item())
    assert await library.set_star("alice", item.id, True)
    assert (await library.get("alice", item.id)).starred
    assert await library.set_star("alice", item.id, True)      # already starred: still found
    assert await library.set_star("alice", item.id, False)
    assert not (await library.get("alice", item.id)).starred
    assert not await library.set_star("alice", "nosuchitem00", True)


async def test_delete_removes_files_and_row(library: Library) -> None:
    item = await library.save(new_item(inputs=(InputFile("image", b"abc", ".png"),), mask=True))
    folder = item.result.parent
    before = await library.size_bytes()
    assert await library.delete("alice", item.id)
    assert not folder.exists()
    assert await library.get("alice", item.id) is None
    assert (await library.page("alice", ItemQuery(text="lighthouse"))).items == ()
    assert await library.size_bytes() <= before - item.size_bytes + 64 * 1024   # db may grow
    assert not await library.delete("alice", item.id)
    assert [p.name for p in folder.parent.iterdir()] == []     # no .trash left behind


async def test_lineage_ancestors_and_children(library: Library) -> None:
    root = await library.save(new_item(prompt="root"))
    edit = await library.save(new_item(prompt="edit of root", mode="edit", parent_id=root.id))
    edit2 = await library.save(new_item(prompt="edit of edit", mode="edit", parent_id=edit.id))
    sibling = await library.save(new_item(prompt="another", mode="inpaint", parent_id=root.id))

    line = await library.lineage("alice", edit2.id)
    assert line is not None and line.item.id == edit2.id
    assert [i.id for i in line.ancestors] == [edit.id, root.id]
    assert line.children == ()
    top = await library.lineage("alice", root.id)
    assert top is not None and top.ancestors == ()
    assert [i.id for i in top.children] == [edit.id, sibling.id]

    # deleting a parent keeps its children, without a parent
    assert await library.delete("alice", edit.id)
    orphan = await library.get("alice", edit2.id)
    assert orphan is not None and orphan.parent_id is None


async def test_unknown_parent_is_dropped(library: Library) -> None:
    item = await library.save(new_item(parent_id="doesnotexist"))
    assert item.parent_id is None


async def test_size_bytes_counts_files_and_database(library: Library) -> None:
    empty = await library.size_bytes()
    item = await library.save(new_item(size=(256, 256)))
    assert await library.size_bytes() >= empty + item.size_bytes - 64 * 1024


async def test_concurrent_saves_all_land(library: Library) -> None:
    items = await asyncio.gather(*(library.save(new_item(prompt=f"burst {n}"))
                                   for n in range(12)))
    assert len({i.id for i in items}) == 12
    assert (await library.page("alice", ItemQuery(text="burst"))).total == 12


async def test_cancelled_caller_does_not_cut_a_save_in_half(library: Library) -> None:
    task = asyncio.create_task(library.save(new_item(prompt="cancelled caller")))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(200):    # the save finishes on its own
        page = await library.page("alice", ItemQuery(text="cancelled"))
        if page.items:
            break
        await asyncio.sleep(0.01)
    assert page.total == 1 and all(p.is_file() for p in page.items[0].files)


async def test_library_must_be_opened(make_library: Callable[..., Library]) -> None:
    lib = make_library()
    with pytest.raises(RuntimeError):
        await lib.save(new_item())
    assert (await lib.open()).items == 0
    await lib.close()
    with pytest.raises(RuntimeError):
        await lib.page("alice", ItemQuery())


async def test_invalid_new_item_is_refused(library: Library) -> None:
    with pytest.raises(ValueError):
        await library.save(new_item(owner=""))
    with pytest.raises(ValueError):
        await library.save(new_item(surface="web"))
    with pytest.raises(TypeError):
        await library.save(new_item(params={"bad": [1, 2]}))

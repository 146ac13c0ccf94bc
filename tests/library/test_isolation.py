"""Another owner's item is never listed, fetched, searched, starred, deleted, followed in a
lineage, or matched by owns_file, whatever the caller passes."""

from __future__ import annotations

import os
from pathlib import Path

from backend.library import InputFile, ItemQuery, Library
from tests.library.conftest import new_item


async def test_other_owners_items_are_invisible(library: Library) -> None:
    mine = await library.save(new_item("alice", "secret castle", mask=True,
                                       inputs=(InputFile("image", b"in", ".png"),)))
    theirs = await library.save(new_item("bob", "bob's castle"))

    assert [i.id for i in (await library.page("bob", ItemQuery())).items] == [theirs.id]
    assert [i.id for i in (await library.page("bob", ItemQuery(text="secret"))).items] == []
    assert (await library.page("bob", ItemQuery(text="castle"))).total == 1
    assert (await library.page("bob", ItemQuery(mode="generate"))).total == 1
    assert await library.get("bob", mine.id) is None
    assert await library.lineage("bob", mine.id) is None
    assert not await library.set_star("bob", mine.id, True)
    assert not await library.delete("bob", mine.id)

    still = await library.get("alice", mine.id)
    assert still is not None and not still.starred
    assert all(p.is_file() for p in still.files)
    assert (await library.page("carol", ItemQuery())).items == ()


async def test_owns_file_only_for_the_owners_own_files(library: Library) -> None:
    mine = await library.save(new_item("alice", mask=True,
                                       inputs=(InputFile("image", b"in", ".png"),)))
    for path in mine.files:
        assert library.owns_file("alice", path) == mine
        assert library.owns_file("alice", str(path)) == mine
        assert library.owns_file("bob", path) is None
    folder = mine.result.parent
    assert library.owns_file("alice", folder / "item.json") is None       # not served
    assert library.owns_file("alice", folder) is None
    assert library.owns_file("alice", library.db_path) is None
    # a path that walks out of the folder and back does not fool it; one that leaves does not pass
    sneaky = folder / ".." / folder.name / mine.result.name
    assert library.owns_file("alice", sneaky) == mine
    assert library.owns_file("alice", folder / ".." / ".." / ".." / "library.db") is None
    assert library.owns_file("alice", "/etc/passwd") is None


async def test_owns_file_follows_symlinks_to_their_target(library: Library,
                                                         tmp_path: Path) -> None:
    mine = await library.save(new_item("alice"))
    link = tmp_path / "link.png"
    os.symlink(mine.result, link)
    assert library.owns_file("alice", link) == mine        # the target is alice's file
    assert library.owns_file("bob", link) is None
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"x")
    inside_link = mine.result.parent / "evil.png"
    os.symlink(outside, inside_link)
    assert library.owns_file("alice", inside_link) is None  # resolves outside the library


async def test_a_parent_of_another_owner_is_not_linked(library: Library) -> None:
    theirs = await library.save(new_item("bob", "bob's picture"))
    mine = await library.save(new_item("alice", parent_id=theirs.id))
    assert mine.parent_id is None
    line = await library.lineage("bob", theirs.id)
    assert line is not None and line.children == ()


async def test_same_id_other_owner_cannot_be_reached_by_guessing(library: Library) -> None:
    theirs = await library.save(new_item("bob"))
    for owner in ("", "BOB", "bob ", "%", "*"):
        assert await library.get(owner, theirs.id) is None
        assert library.owns_file(owner, theirs.result) is None

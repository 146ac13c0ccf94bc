"""Export → import into a fresh data folder, and the CLI commands around them."""

from __future__ import annotations

import argparse
import asyncio
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from backend.library import (
    InputFile,
    ItemQuery,
    Library,
    LibraryConfig,
    LibraryError,
    LibraryItem,
)
from backend.library.cli import add_commands, run
from backend.library.transfer import export_library, import_library
from tests.library.conftest import jpeg_bytes, new_item


async def fill(lib: Library) -> dict[str, str]:
    root = await lib.save(new_item("alice", "root castle", mask=True,
                                   inputs=(InputFile("image", jpeg_bytes(), ".jpg"),)))
    child = await lib.save(new_item("alice", "edit of the castle", mode="edit",
                                    parent_id=root.id))
    grandchild = await lib.save(new_item("alice", "edit of the edit", mode="edit",
                                         parent_id=child.id))
    bob = await lib.save(new_item("bob", "bob's lake"))
    await lib.set_star("alice", child.id, True)
    return {"root": root.id, "child": child.id, "grandchild": grandchild.id, "bob": bob.id}


async def all_items(lib: Library, owner: str) -> list[LibraryItem]:
    return list((await lib.page(owner, ItemQuery(limit=500))).items)


async def test_round_trip_into_a_fresh_library(make_library: Callable[..., Library],
                                               tmp_path: Path) -> None:
    src = make_library(tmp_path / "a")
    await src.open()
    ids = await fill(src)
    zip_path = tmp_path / "out" / "lib.zip"
    zip_path.parent.mkdir()
    report = await export_library(src, zip_path)
    assert report.items == 4 and report.skipped == ()
    originals = {i.id: i for o in ("alice", "bob") for i in await all_items(src, o)}
    await src.close()

    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        assert names[-1] == "manifest.json"
        assert all(n.startswith("library/") for n in names[:-1])

    dst = make_library(tmp_path / "b")
    await dst.open()
    imported = await import_library(dst, zip_path)
    assert len(imported.imported) == 4 and imported.problems == ()
    for owner in ("alice", "bob"):
        for item in await all_items(dst, owner):
            before = originals[item.id]                 # same ids in an empty library
            assert item.owner == before.owner and item.created == before.created
            assert item.parameters == before.parameters and item.starred == before.starred
            assert item.parent_id == before.parent_id
            assert item.result.is_relative_to(dst.data_dir)
            for new, old in zip(item.files, before.files, strict=True):
                assert new.name == old.name and new.read_bytes() == old.read_bytes()
    line = await dst.lineage("alice", ids["grandchild"])
    assert line is not None and [i.id for i in line.ancestors] == [ids["child"], ids["root"]]
    assert (await dst.page("alice", ItemQuery(text="castle"))).total == 2

    again = await import_library(dst, zip_path)      # importing twice adds nothing
    assert again.imported == () and again.already_present == 4
    await dst.close()


async def test_export_one_owner_and_import_as_another(make_library: Callable[..., Library],
                                                      tmp_path: Path) -> None:
    src = make_library(tmp_path / "a")
    await src.open()
    ids = await fill(src)
    zip_path = tmp_path / "alice.zip"
    assert (await export_library(src, zip_path, owner="alice")).items == 3

    # into the SAME library under another owner: every id is taken, so all are re-id'd,
    # and the lineage follows the new ids
    imported = await import_library(src, zip_path, owner="carol")
    assert len(imported.imported) == 3 and imported.reassigned == 3
    carol = {i.prompt: i for i in await all_items(src, "carol")}
    assert set(carol) == {"root castle", "edit of the castle", "edit of the edit"}
    assert not set(ids.values()) & {i.id for i in carol.values()}
    assert carol["edit of the edit"].parent_id == carol["edit of the castle"].id
    assert carol["edit of the castle"].parent_id == carol["root castle"].id
    assert len(await all_items(src, "alice")) == 3           # untouched
    await src.close()


async def test_import_refuses_what_is_not_an_export(library: Library, tmp_path: Path) -> None:
    not_zip = tmp_path / "x.zip"
    not_zip.write_bytes(b"hello")
    with pytest.raises(LibraryError, match="not a readable zip"):
        await import_library(library, not_zip)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("manifest.json", json.dumps({"format": "something else", "items": []}))
    with pytest.raises(LibraryError, match="not a Banana Studio library export"):
        await import_library(library, other)


async def test_import_skips_bad_entries_and_never_writes_outside(
        make_library: Callable[..., Library], tmp_path: Path) -> None:
    src = make_library(tmp_path / "a")
    await src.open()
    await fill(src)
    good = tmp_path / "good.zip"
    await export_library(src, good)
    await src.close()
    with zipfile.ZipFile(good) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        members = {n: zf.read(n) for n in zf.namelist() if n != "manifest.json"}
    manifest["items"][0]["result"] = "../../evil.png"           # escapes: refused
    manifest["items"][1]["thumb"] = "library/2026-05/nope/thumb.webp"  # missing file
    manifest["items"].append({"format": "banana-library-item"})   # garbage
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr("manifest.json", json.dumps(manifest))

    dst = make_library(tmp_path / "b")
    await dst.open()
    report = await import_library(dst, bad)
    assert len(report.problems) == 3 and len(report.imported) == 2
    assert not (tmp_path / "evil.png").exists()
    await dst.close()


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="app.py")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_export_import_check(tmp_path: Path) -> None:
    config = LibraryConfig(data_dir=tmp_path / "a")

    async def seed() -> None:
        lib = Library(config)
        await lib.open()
        await fill(lib)
        await lib.close()

    asyncio.run(seed())
    said: list[str] = []
    zip_path = tmp_path / "x.zip"
    assert run(parse(["library", "export", str(zip_path), "--user", "alice"]), config,
               said.append) == 0
    assert said[-1].startswith("Exported 3 items")
    assert run(parse(["library", "export", str(tmp_path / "y.zip"), "--user", "nobody"]),
               config, said.append) == 0
    assert said[-1] == "Owners in this library: alice (3), bob (1)"

    fresh = LibraryConfig(data_dir=tmp_path / "b")
    assert run(parse(["library", "import", str(zip_path), "--user", "dave"]), fresh,
               said.append) == 0
    assert said[-1] == "Imported 3 items."
    assert run(parse(["library", "check"]), fresh, said.append) == 0
    assert "3 items" in said[-1] and "integrity ok" in said[-1]
    assert run(parse(["library", "import", str(tmp_path / "missing.zip")]), fresh,
               said.append) == 1
    assert run(parse(["library", "check"]), LibraryConfig(mode="off"), said.append) == 2

"""kill -9 during a burst of saves, several times at random moments; then the start-up check
in this process: the database is intact and every row's files exist."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from backend.library import ItemQuery, Library
from backend.library.files import ITEMS_DIR

ROOT = Path(__file__).resolve().parents[2]
KILLS = 5


def run_and_kill(data: Path, seed: int, delay_s: float = 0.0,
                 hang: str = "") -> tuple[dict[str, int], str]:
    """Runs a burst, kills it with SIGKILL after `delay_s` (or once it hangs at its crash
    point); returns its start-up report and the id it hung on."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.library.burst", str(data), str(seed), hang],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    hung_on = ""
    try:
        assert child.stdout is not None
        first = child.stdout.readline()
        assert first, child.stderr.read() if child.stderr else "no output"
        report = json.loads(first)
        assert child.stdout.readline().strip() == "ready"
        if hang:
            line = child.stdout.readline().split()
            assert line[:1] == ["hang"], child.stderr.read() if child.stderr else ""
            hung_on = line[1]
        else:
            time.sleep(delay_s)
        assert child.poll() is None, "the burst stopped on its own: " + (
            child.stderr.read() if child.stderr else "")
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
        if child.stdout:
            child.stdout.close()
        if child.stderr:
            child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    return report, hung_on


async def test_kill_9_during_a_burst_of_saves(make_library: Callable[..., Library],
                                              tmp_path: Path) -> None:
    data = tmp_path / "data"
    rng = random.Random(11)
    seen: list[dict[str, int]] = []
    for k in range(KILLS):
        seen.append(run_and_kill(data, seed=k, delay_s=rng.uniform(0.3, 1.5))[0])

    lib = make_library(data)
    report = await lib.open()
    try:
        # what the children's own start-ups and ours repaired (informative: timing decides)
        print("start-up reports:", seen, report.lines())
        assert report.integrity == "ok"
        conn = sqlite3.connect(data / "library.db")
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        rows = conn.execute("SELECT count(*) FROM items").fetchone()[0]
        assert conn.execute("SELECT items FROM totals").fetchone()[0] == rows
        fts = conn.execute("SELECT count(*) FROM items_fts WHERE items_fts MATCH 'burst OR parallel'"
                           ).fetchone()[0]
        assert fts == rows
        conn.close()
        assert rows > 0

        items = []
        for owner in ("alice", "bob"):
            cursor = None
            while True:
                page = await lib.page(owner, ItemQuery(before=cursor, limit=200))
                items += page.items
                if (cursor := page.next_cursor) is None:
                    break
        assert len(items) == rows
        folders = set()
        for item in items:
            for path in item.files:
                assert path.is_file(), f"{item.id}: {path} is missing"
            with Image.open(item.result) as image:
                image.verify()      # the whole PNG is there, CRCs and all
            folders.add(item.result.parent)
        on_disk = {p for month in (data / ITEMS_DIR).iterdir() for p in month.iterdir()}
        assert on_disk == folders   # no orphan, no .partial, no .trash left
    finally:
        await lib.close()


async def test_kill_9_between_rename_and_commit_adopts_the_item(
        make_library: Callable[..., Library], tmp_path: Path) -> None:
    data = tmp_path / "data"
    _, hung_on = run_and_kill(data, seed=1, hang="commit")
    lib = make_library(data)
    report = await lib.open()
    try:
        assert hung_on in report.adopted
        found = [await lib.get(owner, hung_on) for owner in ("alice", "bob")]
        item = next(i for i in found if i is not None)
        assert all(p.is_file() for p in item.files)
        assert item.prompt is not None and item.prompt.startswith("burst 1 item")
    finally:
        await lib.close()


async def test_kill_9_between_trash_and_commit_finishes_the_delete(
        make_library: Callable[..., Library], tmp_path: Path) -> None:
    data = tmp_path / "data"
    _, hung_on = run_and_kill(data, seed=2, hang="delete")
    lib = make_library(data)
    report = await lib.open()
    try:
        assert report.deletes_finished == (hung_on,)
        assert await lib.get("alice", hung_on) is None and await lib.get("bob", hung_on) is None
        assert not list((data / ITEMS_DIR).glob("*/.trash-*"))
        assert report.integrity == "ok" and report.rows_removed == ()
    finally:
        await lib.close()

"""A process that saves (and sometimes stars or deletes) library items as fast as it can,
until it is killed: `python -m tests.library.burst DATA_DIR SEED [HANG]`. Prints its start-up
report as one JSON line, then "ready", so the test knows when the burst begins.

HANG = `commit`: after 10 saves, the next save stops for good between its folder's rename and
its row's commit (printing "hang <id>"); `delete`: the next delete stops between renaming the
folder to .trash and deleting the row. The test kills it there: a crash at an exact point."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import threading
from pathlib import Path

from PIL import Image

from backend.library import InputFile, Library, LibraryConfig, NewItem, db


def hang_in(name: str, after: int) -> None:
    """Replaces db.<name> with one that blocks forever from its `after`-th call on."""
    real = getattr(db, name)
    calls = 0

    def stuck(conn: object, *args: object, **kw: object) -> object:
        nonlocal calls
        calls += 1
        if calls > after:
            subject = args[0]
            print(f"hang {getattr(subject, 'id', None) or subject[0]}", flush=True)
            threading.Event().wait()
        return real(conn, *args, **kw)

    setattr(db, name, stuck)


async def burst(data_dir: Path, seed: int, hang: str) -> None:
    rng = random.Random(seed)
    library = Library(LibraryConfig(data_dir=data_dir))
    report = await library.open()
    print(json.dumps({"adopted": len(report.adopted), "partial": report.partial_removed,
                      "deletes": len(report.deletes_finished),
                      "set_aside": len(report.set_aside), "items": report.items}), flush=True)
    print("ready", flush=True)
    if hang == "commit":
        hang_in("insert_item", after=10)
    elif hang == "delete":
        hang_in("delete_rows", after=0)
    saved: list[str] = []
    n = 0
    while True:
        n += 1
        size = (rng.randint(24, 96), rng.randint(24, 96))
        image = Image.effect_noise(size, 40).convert("RGB")
        new = NewItem(
            owner=rng.choice(("alice", "bob")), surface="ui", mode="edit",
            image=image, params={"prompt": f"burst {seed} item {n}", "seed": n},
            workflow={"1": {"class_type": "X", "inputs": {}}},
            inputs=(InputFile("image", rng.randbytes(rng.randint(100, 5000)), ".png"),),
            extras={"mask": Image.new("L", size, 255)} if n % 3 == 0 else {},
            timings={"total_s": 0.5},
            parent_id=rng.choice(saved) if saved and n % 4 == 0 else None,
        )
        # several saves in flight at once, like several people finishing together
        batch = [library.save(new)] + [
            library.save(NewItem(new.owner, "api", "generate", image,
                                 {"prompt": f"parallel {n}.{k}"}))
            for k in range(rng.randint(0, 2))]
        for item in await asyncio.gather(*batch):
            saved.append(item.id)
        if n % 5 == 0 and saved:
            victim = saved.pop(rng.randrange(len(saved)))
            await library.delete("alice", victim) or await library.delete("bob", victim)
        if n % 7 == 0 and saved:
            for owner in ("alice", "bob"):
                await library.set_star(owner, rng.choice(saved), True)


if __name__ == "__main__":
    asyncio.run(burst(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else ""))

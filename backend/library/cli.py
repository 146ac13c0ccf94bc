"""`python app.py library export FILE.zip [--user OWNER]`, `import FILE.zip [--user OWNER]`
and `check`. The lead wires `add_commands(sub)` into backend/cli.py's parser and calls
`run(args, LibraryConfig.from_env())` when `args.command == "library"`.

OWNER is the owner string as stored (`shared`, `user:alice`, `api:1a2b3c4d`, …): export
keeps only that owner's items; import assigns them all to it.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from backend.library.config import LibraryConfig
from backend.library.library import Library
from backend.library.models import LibraryError
from backend.library.transfer import export_library, import_library

Say = Callable[[str], None]


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "library", help="the library: export, import, check",
        description="Move a library between machines, or check it.")
    sub = parser.add_subparsers(dest="library_command", required=True)
    export = sub.add_parser("export", help="write the library (or one owner's items) to a zip")
    export.add_argument("file", type=Path, help="the zip to write")
    export.add_argument("--user", help="only this owner's items (as stored, e.g. user:alice)")
    imp = sub.add_parser("import", help="add the items of an exported zip to this library")
    imp.add_argument("file", type=Path, help="a zip written by `library export`")
    imp.add_argument("--user", help="the owner to give every imported item")
    sub.add_parser("check", help="open the library (migrations, crash check, integrity, "
                                 "retention) and print what was found")


def run(args: argparse.Namespace, config: LibraryConfig, say: Say = print) -> int:
    """0 on success, 1 when the work failed, 2 when there is no library to work on."""
    if not config.persistent:
        say("STUDIO_LIBRARY=off: there is no library to work on.")
        return 2
    command: str = args.library_command
    try:
        return asyncio.run(_run(command, args, config, say))
    except LibraryError as exc:
        say(exc.message)
        return 1


async def _run(command: str, args: argparse.Namespace, config: LibraryConfig,
               say: Say) -> int:
    library = Library(config)
    report = await library.open()
    try:
        if command == "check":
            for line in report.lines():
                say(line)
            return 0 if report.integrity == "ok" else 1
        user: str | None = args.user
        if command == "export":
            exported = await export_library(library, args.file, owner=user)
            say(exported.sentence())
            if user is not None and exported.items == 0:
                owners = Counter(i.owner for i in await library.items_for_export())
                say("Owners in this library: "
                    + (", ".join(f"{o} ({n})" for o, n in owners.most_common()) or "none"))
            return 0
        imported = await import_library(library, args.file, owner=user)
        say(imported.sentence())
        for problem in imported.problems[:20]:
            say(f"  {problem}")
        return 1 if imported.problems else 0
    finally:
        await library.close()

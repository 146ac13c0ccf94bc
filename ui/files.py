"""Library files shown in the page, without a second copy.

Gradio serves an output file only from its cache folder (it copies anything else there, and
refuses paths outside the working and temp folders: a data folder elsewhere would fail). The
library's PNGs and thumbnails are hard-linked into the cache instead (a copy where the cache is
on another disk): no bytes are re-encoded or duplicated, and the data folder itself (with its
database) is never exposed to Gradio's file route.

Each file gets a folder named by a SHA-256 of its path and a per-process secret, so a served
URL cannot be guessed from an item id. Folders unused for a day are swept, like Gradio's own
cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import threading
import time
from pathlib import Path

from gradio.utils import get_upload_folder

log = logging.getLogger(__name__)

MAX_AGE_S = 24 * 3600.0
SWEEP_EVERY_S = 600.0
_SECRET = secrets.token_hex(16)
_lock = threading.Lock()
_last_sweep = 0.0
# Which library file each cache file stands for (ui/cache_guard.py asks whose it is).
_sources: dict[str, Path] = {}


def cache_root() -> Path:
    return Path(get_upload_folder()) / "banana-library"


def served(path: str | os.PathLike[str]) -> str:
    """A path in Gradio's cache holding the same file (made once; reused while it lasts)."""
    source = Path(path)
    key = hashlib.sha256(f"{_SECRET}:{source}".encode()).hexdigest()
    folder = cache_root() / key
    target = folder / source.name
    _sources[os.path.abspath(target)] = source
    if target.exists():
        os.utime(folder)                  # in use: the sweep ages folders, never the files
        return str(target)
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".{source.name}.{secrets.token_hex(4)}"
    try:
        os.link(source, staging)
    except OSError:
        shutil.copyfile(source, staging)          # another file system: a plain copy
    os.replace(staging, target)
    _sweep()
    return str(target)


def source_of(cached: str | os.PathLike[str]) -> Path | None:
    """The library file a cache path was made from by `served` (this process), else None."""
    return _sources.get(os.path.abspath(cached))


def _sweep() -> None:
    global _last_sweep
    now = time.time()
    with _lock:
        if now - _last_sweep < SWEEP_EVERY_S:
            return
        _last_sweep = now
    root = cache_root()
    for folder in root.iterdir() if root.is_dir() else ():
        try:
            if now - folder.stat().st_mtime > MAX_AGE_S:
                for file in folder.iterdir():
                    _sources.pop(os.path.abspath(file), None)
                    file.unlink(missing_ok=True)
                folder.rmdir()
        except OSError as exc:
            log.debug("sweep skipped %s: %s", folder, exc)

"""Per-session history: results saved once as PNGs with their parameters, listed newest first.

gr.State holds only small frozen entries (paths and parameters, never pixels), so a long
session does not grow the server's memory with images.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from backend.library import png as metadata

log = logging.getLogger(__name__)

HISTORY_CAP = 50
THUMB_SIDE = 320
# Result files older than this are removed when new ones are written (long-running servers).
MAX_FILE_AGE_S = 24 * 3600


@dataclass(frozen=True)
class HistoryEntry:
    id: str
    mode: str
    title: str                      # the mode's tab label when it ran
    path: str                       # the result PNG (parameters + graph in its text chunks)
    params: Mapping[str, Any]
    sources: tuple[str, ...] = ()   # the input images, saved as PNGs (for compare / restore)
    extras: Mapping[str, str] = field(default_factory=dict)   # e.g. {"mask": path}
    info: str = ""
    created: float = 0.0
    thumb: str = ""                 # small WebP for the gallery (Gradio hashes every file it serves)


class ResultStore:
    """Writes result and input PNGs under one folder of the system temp dir.

    The temp dir is one of the places Gradio serves files from; names carry the mode and
    seed so a downloaded file is recognisable.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        base = root or os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir()
        self.root = Path(base) / "banana_studio"
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._last_sweep = 0.0

    def save_result(
        self,
        image: Image.Image,
        params: Mapping[str, Any],
        workflow: Mapping[str, Any] | None,
    ) -> Path:
        mode = str(params.get("mode", "image"))
        seed = params.get("seed")
        stem = f"banana-{mode}" + (f"-{seed}" if seed is not None else "")
        path = self._unique(stem)
        path.write_bytes(metadata.png_bytes(image, params, workflow))
        self._sweep()
        return path

    def save_thumb(self, image: Image.Image, max_side: int = THUMB_SIDE) -> Path:
        thumb = image.copy()
        thumb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        if thumb.mode not in ("RGB", "RGBA"):
            thumb = thumb.convert("RGBA" if "A" in thumb.getbands() else "RGB")
        path = self._unique("thumb").with_suffix(".webp")
        thumb.save(path, format="WEBP", quality=82)
        return path

    def save_plain(self, image: Image.Image, stem: str) -> Path:
        path = self._unique(stem)
        if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"):
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")  # CMYK, LAB…
        image.save(path, format="PNG", compress_level=3)
        return path

    def _unique(self, stem: str) -> Path:
        folder = self.root / uuid.uuid4().hex[:12]
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{stem}.png"

    def _sweep(self) -> None:
        now = time.time()
        with self._lock:
            if now - self._last_sweep < 600:
                return
            self._last_sweep = now
        for folder in self.root.iterdir():
            try:
                if folder.is_dir() and now - folder.stat().st_mtime > MAX_FILE_AGE_S:
                    for file in folder.iterdir():
                        file.unlink(missing_ok=True)
                    folder.rmdir()
            except OSError as exc:
                log.debug("sweep skipped %s: %s", folder, exc)


def add_entry(
    history: Sequence[HistoryEntry] | None, entry: HistoryEntry, cap: int = HISTORY_CAP
) -> list[HistoryEntry]:
    """Newest first, capped."""
    return [entry, *(history or [])][:cap]


def gallery_items(history: Sequence[HistoryEntry] | None) -> list[tuple[str, str]]:
    return [(e.thumb or e.path, caption(e)) for e in history or []]


def caption(entry: HistoryEntry) -> str:
    label = entry.title or entry.mode
    text = str(entry.params.get("prompt") or entry.params.get("region") or "").strip()
    if len(text) > 40:
        text = text[:39] + "…"
    return f"{label}: {text}" if text else label


def describe(entry: HistoryEntry) -> str:
    """Markdown for the selected history item: what made it."""
    p = entry.params
    when = time.strftime("%H:%M:%S", time.localtime(entry.created))
    lines = [f"**{entry.title or entry.mode}** · {when}"]
    for key, label in (("prompt", "Prompt"), ("region", "Region"), ("negative_prompt", "Negative")):
        if p.get(key):
            lines.append(f"{label}: {_md_escape(str(p[key]))}")
    knobs = [
        f"{label} {p[key]}"
        for key, label in (
            ("seed", "seed"), ("steps", "steps"), ("cfg", "cfg"), ("variant", "variant"),
        )
        if p.get(key) not in (None, "")
    ]
    if p.get("width") and p.get("height"):
        knobs.append(f"{p['width']}×{p['height']}")
    if knobs:
        lines.append(" · ".join(knobs))
    if entry.info:
        lines.append(entry.info)
    return "  \n".join(lines)


def _md_escape(text: str) -> str:
    return "".join("\\" + c if c in "\\`*_[]<>#|" else c for c in text)


def find(history: Sequence[HistoryEntry] | None, index: int | None) -> HistoryEntry | None:
    if history is None or index is None or not 0 <= index < len(history):
        return None
    return history[index]

"""PNG text chunks: what made an image travels with it, and comes back when it is dropped in.

Keys follow ComfyUI's convention so a studio PNG dropped onto ComfyUI opens its graph:
`prompt` is the API-format graph that was posted (ComfyUI reads it back with its API loader).
We do not write `workflow`: ComfyUI expects its editor format there, which we never have, and
an API graph under that key would fail to load. Our own `parameters` chunk is JSON.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

log = logging.getLogger(__name__)

PARAMETERS_KEY = "parameters"
PROMPT_KEY = "prompt"
WORKFLOW_KEY = "workflow"
# A restored file is only ever a small JSON text: refuse absurd chunks.
MAX_CHUNK_CHARS = 2_000_000


def pnginfo_for(params: Mapping[str, Any], workflow: Mapping[str, Any] | None) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text(PARAMETERS_KEY, json.dumps(dict(params), sort_keys=True, default=str))
    if workflow:
        info.add_text(PROMPT_KEY, json.dumps(workflow, default=str))
    return info


def png_bytes(
    image: Image.Image, params: Mapping[str, Any], workflow: Mapping[str, Any] | None = None
) -> bytes:
    """The image as a lossless PNG (alpha kept) carrying its parameters and graph."""
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=pnginfo_for(params, workflow), compress_level=4)
    return buf.getvalue()


def save_png(
    image: Image.Image,
    path: str | Path,
    params: Mapping[str, Any],
    workflow: Mapping[str, Any] | None = None,
) -> Path:
    path = Path(path)
    path.write_bytes(png_bytes(image, params, workflow))
    return path


def read_text_chunks(source: str | Path | bytes | Image.Image) -> dict[str, str]:
    """Text chunks of a PNG (empty for anything else, never raises on a bad file)."""
    try:
        if isinstance(source, Image.Image):
            info = source.info
        else:
            data = source if isinstance(source, bytes) else Path(source).read_bytes()
            with Image.open(io.BytesIO(data)) as img:
                info = dict(img.info)
    except (OSError, ValueError) as exc:
        log.info("no metadata read: %s", exc)
        return {}
    return {k: v for k, v in info.items() if isinstance(k, str) and isinstance(v, str)}


def read_parameters(
    source: str | Path | bytes | Image.Image, known: Collection[str]
) -> dict[str, Any] | None:
    """The studio parameters stored in a PNG, or None when it carries none we understand.
    Only `known` names are kept (ui/restore.py derives them from the registered modes)."""
    raw = read_text_chunks(source).get(PARAMETERS_KEY)
    if not raw or len(raw) > MAX_CHUNK_CHARS:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        # A1111-style plain-text "parameters" is not ours; leave it alone.
        return None
    if not isinstance(data, dict) or "mode" not in data:
        return None
    return {k: v for k, v in data.items() if k in known}


def read_workflow(source: str | Path | bytes | Image.Image) -> dict[str, Any] | None:
    """The API-format graph stored under `prompt`, if any."""
    raw = read_text_chunks(source).get(PROMPT_KEY)
    if not raw or len(raw) > MAX_CHUNK_CHARS:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None

"""Result PNGs with the studio's metadata, thumbnails, and reading the metadata back.

The one implementation for every surface (the UI's "Restore from PNG" reads with it too), in
the same format the studio always wrote, so older PNGs restore:
`parameters` is our JSON; `prompt` is the API-format graph that was posted (ComfyUI opens it
when the PNG is dropped on its canvas). We never write `workflow`: ComfyUI expects its editor
format there, which we do not have.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Collection, Mapping
from pathlib import Path

from PIL import Image, PngImagePlugin

log = logging.getLogger(__name__)

PARAMETERS_KEY = "parameters"
PROMPT_KEY = "prompt"
WORKFLOW_KEY = "workflow"
# A restored chunk is only ever a small JSON text: refuse absurd ones.
MAX_CHUNK_CHARS = 2_000_000
# ComfyUI's own SaveImage level, as the API uses: Pillow's default 6 costs 2-7x the time for
# ~30% fewer bytes.
PNG_COMPRESS_LEVEL = 4
THUMB_SIDE = 320
THUMB_QUALITY = 82
_PNG_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16")


def pnginfo_for(
    params: Mapping[str, object], workflow: Mapping[str, object] | None
) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text(PARAMETERS_KEY, json.dumps(dict(params), sort_keys=True, default=str))
    if workflow:
        info.add_text(PROMPT_KEY, json.dumps(workflow, default=str))
    return info


def png_bytes(
    image: Image.Image,
    params: Mapping[str, object],
    workflow: Mapping[str, object] | None = None,
) -> bytes:
    """The result as a lossless PNG (alpha kept) carrying its parameters and graph."""
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=pnginfo_for(params, workflow),
               compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def plain_png_bytes(image: Image.Image) -> bytes:
    """A PNG without metadata (masks and other extras)."""
    if image.mode not in _PNG_MODES:
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")   # CMYK, LAB…
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def thumbnail_webp(image: Image.Image, side: int = THUMB_SIDE) -> bytes:
    """A small WebP for galleries (browsers never download the full PNG to show a grid)."""
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    scale = min(1.0, side / max(image.width, image.height, 1))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # reducing_gap: a cheap box reduction first, then the filter on a small image.
    small = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
    buf = io.BytesIO()
    small.save(buf, format="WEBP", quality=THUMB_QUALITY)
    return buf.getvalue()


def read_text_chunks(source: str | Path | bytes | Image.Image) -> dict[str, str]:
    """Text chunks of a PNG (empty for anything else; never raises on a bad file)."""
    try:
        if isinstance(source, Image.Image):
            info = dict(source.info)
        else:
            data = source if isinstance(source, bytes) else Path(source).read_bytes()
            with Image.open(io.BytesIO(data)) as img:
                info = dict(img.info)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        # A bomb's header is refused by Pillow with an error that is not an OSError.
        log.info("no metadata read: %s", exc)
        return {}
    return {k: v for k, v in info.items() if isinstance(k, str) and isinstance(v, str)}


def read_parameters(
    source: str | Path | bytes | Image.Image, known: Collection[str]
) -> dict[str, object] | None:
    """The studio parameters stored in a PNG, or None when it carries none we understand.
    Only `known` names are kept (the UI derives them from the registered modes)."""
    raw = read_text_chunks(source).get(PARAMETERS_KEY)
    data = _json_object(raw)
    if data is None or "mode" not in data:
        return None     # A1111-style plain-text "parameters" is not ours: leave it alone
    return {k: data[k] for k in known if k in data}


def read_workflow(source: str | Path | bytes | Image.Image) -> dict[str, object] | None:
    """The API-format graph stored under `prompt`, if any."""
    return _json_object(read_text_chunks(source).get(PROMPT_KEY))


def _json_object(raw: str | None) -> dict[str, object] | None:
    if not raw or len(raw) > MAX_CHUNK_CHARS:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None

"""Pure image helpers for the tabs: masks from the editor, outpaint canvas, presets.

No Gradio here, so every function is unit-testable with plain PIL images.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

# The mask brush colour in the editor (and in an inverted layer). Semi-opaque so the
# picture stays visible under the paint; the mask only looks at alpha > 0.
MASK_RGB = (255, 61, 127)
MASK_ALPHA = 150


def editor_background(value: Mapping[str, Any] | None) -> Image.Image | None:
    if not value:
        return None
    return value.get("background")


def editor_mask(value: Mapping[str, Any] | None) -> Image.Image | None:
    """Mode-L mask (255 = change) from every layer's alpha; None without a background.

    Built from layer alpha, never by diffing the composite (which the brush colour and
    the image can make ambiguous).
    """
    background = editor_background(value)
    if background is None:
        return None
    width, height = background.size
    mask = np.zeros((height, width), np.uint8)
    for layer in value.get("layers") or ():
        if layer is None:
            continue
        alpha = np.asarray(layer.convert("RGBA"))[..., 3]
        if alpha.shape != mask.shape:
            # A layer the editor sized differently: align it to the image, top-left.
            fitted = np.zeros_like(mask)
            h, w = min(height, alpha.shape[0]), min(width, alpha.shape[1])
            fitted[:h, :w] = alpha[:h, :w]
            alpha = fitted
        mask |= (alpha > 0).astype(np.uint8) * 255
    return Image.fromarray(mask, "L")


def mask_layer(mask: Image.Image) -> Image.Image:
    """An editor layer painting `mask` (L, 255 = change) in the brush colour."""
    layer = Image.new("RGBA", mask.size, (*MASK_RGB, 0))
    alpha = mask.point(lambda v: MASK_ALPHA if v > 0 else 0)
    layer.putalpha(alpha)
    return layer


def invert_editor_mask(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The same editor value with one layer whose painted area is the complement."""
    mask = editor_mask(value)
    if mask is None:
        return None
    inverted = mask.point(lambda v: 0 if v > 0 else 255)
    return {"background": value["background"], "layers": [mask_layer(inverted)], "composite": None}


def clear_editor_mask(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    background = editor_background(value)
    if background is None:
        return None
    return {"background": background, "layers": [], "composite": None}


def mask_coverage(mask: Image.Image | None) -> float:
    if mask is None:
        return 0.0
    arr = np.asarray(mask)
    return float((arr > 0).mean()) if arr.size else 0.0


def checkerboard(size: tuple[int, int], cell: int = 16) -> Image.Image:
    """Light grey checkerboard, the usual sign for 'nothing here yet'."""
    width, height = size
    ys, xs = np.indices((height, width))
    light = ((xs // cell + ys // cell) % 2 == 0)
    arr = np.where(light[..., None], np.uint8(236), np.uint8(204)).repeat(3, axis=2)
    return Image.fromarray(arr.astype(np.uint8), "RGB")


def on_checkerboard(image: Image.Image, cell: int = 16) -> Image.Image:
    board = checkerboard(image.size, cell).convert("RGBA")
    board.alpha_composite(image.convert("RGBA"))
    return board.convert("RGB")


@dataclass(frozen=True)
class Pads:
    left: int
    top: int
    right: int
    bottom: int

    def canvas_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return size[0] + self.left + self.right, size[1] + self.top + self.bottom


def padded_preview(image: Image.Image, pads: Pads, max_side: int = 768) -> Image.Image:
    """The padded canvas with a checkerboard in the new area and a thin guide line.

    Scaled down for display only: the request gets the original image and the pads.
    """
    width, height = pads.canvas_size(image.size)
    scale = min(1.0, max_side / max(width, height))
    sw, sh = max(1, round(width * scale)), max(1, round(height * scale))
    canvas = checkerboard((sw, sh), cell=max(8, round(16 * scale * 2))).convert("RGBA")
    inner = image.convert("RGBA").resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
        Image.Resampling.LANCZOS,
    )
    x, y = round(pads.left * scale), round(pads.top * scale)
    canvas.alpha_composite(inner, (x, y))
    if pads != Pads(0, 0, 0, 0):
        draw = ImageDraw.Draw(canvas)
        draw.rectangle(
            (x, y, x + inner.width - 1, y + inner.height - 1), outline=(245, 197, 24, 255), width=2
        )
    return canvas.convert("RGB")


def round16(value: float) -> int:
    return int(round(value / 16.0)) * 16


def pads_for_aspect(size: tuple[int, int], ratio: float, max_pad: int) -> Pads:
    """Pads (multiples of 16, split evenly) that extend `size` towards `ratio` = w / h.

    Only grows the image: a wide image asked to be 1:1 gains top and bottom.
    """
    width, height = size
    if width <= 0 or height <= 0 or ratio <= 0:
        return Pads(0, 0, 0, 0)
    if width / height < ratio:
        extra = max(0, math.ceil(height * ratio) - width)
        first = min(max_pad, round16(extra / 2))
        second = min(max_pad, max(0, round16(extra - first)))
        return Pads(first, 0, second, 0)
    extra = max(0, math.ceil(width / ratio) - height)
    first = min(max_pad, round16(extra / 2))
    second = min(max_pad, max(0, round16(extra - first)))
    return Pads(0, first, 0, second)


# Qwen-Image's aspect presets. 1140 is not a multiple of 16 (the latent needs it), so the
# 4:3 and 3:4 presets use 1136, the nearest multiple.
SIZE_PRESETS: dict[str, tuple[int, int]] = {
    "1328×1328 · 1:1": (1328, 1328),
    "1664×928 · 16:9": (1664, 928),
    "928×1664 · 9:16": (928, 1664),
    "1472×1136 · 4:3 (1140 rounded to 16)": (1472, 1136),
    "1136×1472 · 3:4 (1140 rounded to 16)": (1136, 1472),
    "1584×1056 · 3:2": (1584, 1056),
    "1056×1584 · 2:3": (1056, 1584),
    "1024×1024 · 1:1 (faster)": (1024, 1024),
}
DEFAULT_SIZE_PRESET = "1328×1328 · 1:1"

OUTPAINT_ASPECTS: dict[str, float] = {
    "to 16:9": 16 / 9,
    "to 3:2": 3 / 2,
    "to 4:3": 4 / 3,
    "to 1:1": 1.0,
    "to 3:4": 3 / 4,
    "to 2:3": 2 / 3,
    "to 9:16": 9 / 16,
}


def thumbnail(image: Image.Image, max_side: int = 256) -> Image.Image:
    thumb = image.copy()
    thumb.thumbnail((max_side, max_side))
    return thumb

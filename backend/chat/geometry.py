"""Pixel arithmetic for the router: outpaint pads from words, generate sizes from aspects.

Decided amounts (documented in the router's docstring too):
- one side ("extend to the left"): 50 % of the image's side along that axis;
  "a little/slightly" 25 %, "a lot" 100 %; or what the text states ("by 300 px", "by half",
  "by 20 %");
- "widen" / "make it wider" (and taller): 25 % per side, 50 % in all;
- "zoom out" / "uncrop": the canvas becomes 1.5× the image (25 % per side), "2x" → 2×;
- an aspect ("make it 16:9"): pads on the short axis only, split evenly (odd pixel right/bottom).
Pads above the studio's per-side limit are capped, and the reason says so.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

# The latent grid, as in backend.operations.sizing.GRID: not imported, so this package stays
# free of the operations package (and of its imports); sizes are checked there anyway.
GRID = 16
SIDES = ("left", "top", "right", "bottom")
HORIZONTAL = ("left", "right")
VERTICAL = ("top", "bottom")

# Qwen-Image's own recommended sizes; other ratios are computed around the same area.
QWEN_SIZES: dict[tuple[int, int], tuple[int, int]] = {
    (1, 1): (1328, 1328),
    (16, 9): (1664, 928),
    (9, 16): (928, 1664),
    (4, 3): (1472, 1104),
    (3, 4): (1104, 1472),
    (3, 2): (1584, 1056),
    (2, 3): (1056, 1584),
}
BASE_AREA = 1328 * 1328


@dataclass(frozen=True)
class Pads:
    """Pixels to add on each side (outpaint)."""

    left: int = 0
    top: int = 0
    right: int = 0
    bottom: int = 0

    def any(self) -> bool:
        return any(self.as_tuple())

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.left, self.top, self.right, self.bottom)

    def capped(self, max_pad: int | None) -> tuple[Pads, bool]:
        """(pads with each side ≤ max_pad, whether any was cut)."""
        if max_pad is None or max(self.as_tuple()) <= max_pad:
            return self, False
        return Pads(*(min(pad, max_pad) for pad in self.as_tuple())), True

    def describe(self) -> str:
        """`left 512 px, right 512 px`."""
        return ", ".join(f"{side} {pad} px" for side, pad in zip(SIDES, self.as_tuple(), strict=True)
                         if pad)


@dataclass(frozen=True)
class Amount:
    """How much to extend: stated pixels, or a fraction of the image's side on that axis."""

    pixels: int | None = None
    fraction: float | None = None


def side_pads(size: tuple[int, int], sides: Collection[str], amount: Amount) -> Pads:
    """Pads for "extend to the left/right/…": each named side by the amount."""
    width, height = size
    values = {}
    for side in sides:
        if amount.pixels is not None:
            values[side] = amount.pixels
        else:
            extent = width if side in HORIZONTAL else height
            values[side] = round(extent * (amount.fraction if amount.fraction is not None else 0.5))
    return Pads(**values)


def aspect_pads(size: tuple[int, int], ratio: tuple[int, int],
                sides: Collection[str] = ()) -> Pads:
    """Pads that bring `size` to `ratio` by growing its short axis. Named sides on that axis
    take the whole growth; otherwise it is split evenly. Empty when it already fits (±1 %)."""
    width, height = size
    target = ratio[0] / ratio[1]
    current = width / height
    if abs(current - target) / target < 0.01:
        return Pads()
    if current < target:
        grow, axis = round(height * target) - width, HORIZONTAL
    else:
        grow, axis = round(width / target) - height, VERTICAL
    chosen = [side for side in axis if side in sides] or list(axis)
    if len(chosen) == 1:
        return Pads(**{chosen[0]: grow})
    first = grow // 2
    return Pads(**{axis[0]: first, axis[1]: grow - first})


def zoom_pads(size: tuple[int, int], factor: float | None, pixels: int | None) -> Pads:
    """Pads for "zoom out": every side, so the canvas is `factor`× the image (or +pixels)."""
    if pixels is not None:
        return Pads(pixels, pixels, pixels, pixels)
    width, height = size
    per_side = ((factor if factor is not None else 1.5) - 1) / 2
    horizontal, vertical = round(width * per_side), round(height * per_side)
    return Pads(horizontal, vertical, horizontal, vertical)


def aspect_size(ratio: tuple[int, int]) -> tuple[int, int]:
    """A generate size for an aspect ratio: Qwen-Image's table, else ~1.76 MP on the grid."""
    a, b = ratio
    divisor = math.gcd(a, b)
    reduced = (a // divisor, b // divisor)
    if reduced in QWEN_SIZES:
        return QWEN_SIZES[reduced]
    target = a / b
    width = math.sqrt(BASE_AREA * target)
    return _grid(width), _grid(width / target)


def grid_size(width: int, height: int) -> tuple[int, int]:
    """A stated size moved to the latent grid (the studio's checks then apply as usual)."""
    return _grid(width), _grid(height)


def _grid(value: float) -> int:
    """Nearest multiple of the grid (halves up), never below one cell."""
    return max(GRID, math.floor(value / GRID + 0.5) * GRID)

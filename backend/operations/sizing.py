"""Working sizes for sampling, and the outpaint canvas geometry.

Decided: templates never rescale; the studio uploads images already at the working size, so
the model sees exactly the pixels we later map back. The working size keeps the aspect ratio,
scales DOWN to `max_sampling_pixels` (~1 MP, the edit model's native budget and the VRAM
bound), and scales UP inputs below a quarter of it (512×512 at the default): the edit model
degrades badly on tiny inputs, and the full-resolution composite brings the result back to
the input's size anyway. Sides are multiples of 16 (the latent grid plus the patchify step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from backend.limits import GRID


def round_to_grid(value: float, grid: int = GRID) -> int:
    """Nearest multiple of `grid` (halves round up), never below one grid cell."""
    return max(grid, math.floor(value / grid + 0.5) * grid)


def nearest_multiples(value: int, grid: int = GRID) -> tuple[int, int]:
    """The multiples just below and above `value` (for "try 992 or 1008" messages)."""
    low = (value // grid) * grid
    return max(grid, low), low + grid


def min_sampling_pixels(max_pixels: int) -> int:
    return max_pixels // 4


def working_size(
    width: int, height: int, *, max_pixels: int, upscale_small: bool = True
) -> tuple[int, int]:
    """(width, height) to sample at: aspect kept, within the budget, multiples of 16."""
    pixels = width * height
    scale = 1.0
    if pixels > max_pixels:
        scale = math.sqrt(max_pixels / pixels)
    elif upscale_small and pixels < min_sampling_pixels(max_pixels):
        scale = math.sqrt(min_sampling_pixels(max_pixels) / pixels)
    w, h = round_to_grid(width * scale), round_to_grid(height * scale)
    # Rounding up may overshoot the budget by a row or column of cells: take off the one
    # that keeps the aspect ratio closest to the input's.
    aspect = width / height
    while w * h > max_pixels and max(w, h) > GRID:
        options = [(w - GRID, h)] if w > GRID else []
        options += [(w, h - GRID)] if h > GRID else []
        w, h = min(options, key=lambda size: abs(math.log(size[0] / size[1] / aspect)))
    return w, h


@dataclass(frozen=True)
class OutpaintGeometry:
    """Where everything sits, at full resolution and at the working resolution.

    `image_work` is the input's size as uploaded; `pads_work` what ImagePadForOutpaint gets
    (so `canvas_work` sides are multiples of 16); `pads_full` the same pads mapped back to the
    input's pixels, which place the untouched input on the `canvas_full` result.
    """

    image_full: tuple[int, int]
    image_work: tuple[int, int]
    pads_requested: tuple[int, int, int, int]  # left, top, right, bottom
    pads_work: tuple[int, int, int, int]
    pads_full: tuple[int, int, int, int]

    @property
    def canvas_work(self) -> tuple[int, int]:
        (w, h), (left, top, right, bottom) = self.image_work, self.pads_work
        return w + left + right, h + top + bottom

    @property
    def canvas_full(self) -> tuple[int, int]:
        (w, h), (left, top, right, bottom) = self.image_full, self.pads_full
        return w + left + right, h + top + bottom

    @property
    def adjusted(self) -> bool:
        return self.pads_full != self.pads_requested


def _pad_pair(first: int, second: int, scale: float) -> tuple[int, int]:
    """Scale two opposite pads and grow their sum to a multiple of 16, sharing the extra
    between the sides that were asked for (never creating a pad nobody asked for)."""
    a = round(first * scale) if first else 0
    b = round(second * scale) if second else 0
    if first and not a:
        a = 1
    if second and not b:
        b = 1
    extra = -(a + b) % GRID
    if extra:
        if first and second:
            a += extra // 2
            b += extra - extra // 2
        elif first:
            a += extra
        else:
            b += extra
    return a, b


OUTPAINT_SLACK = 1.02


def outpaint_geometry(
    width: int, height: int, pads: tuple[int, int, int, int], *, max_pixels: int
) -> OutpaintGeometry:
    """Scale the whole padded canvas to the sampling budget, then align it to the grid.

    Rounding each part up to the 16-pixel grid can overshoot the budget (a thin input with
    wide pads: up to a third over), and the budget is what bounds VRAM: shrink and retry
    until within OUTPAINT_SLACK (a row of cells over is harmless; moving the pads is not)."""
    left, top, right, bottom = pads
    canvas_pixels = (width + left + right) * (height + top + bottom)
    scale = 1.0
    if canvas_pixels > max_pixels:
        scale = math.sqrt(max_pixels / canvas_pixels)
    elif canvas_pixels < min_sampling_pixels(max_pixels):
        scale = math.sqrt(min_sampling_pixels(max_pixels) / canvas_pixels)
    for _ in range(12):
        w, h = round_to_grid(width * scale), round_to_grid(height * scale)
        sx, sy = w / width, h / height
        wl, wr = _pad_pair(left, right, sx)
        wt, wb = _pad_pair(top, bottom, sy)
        work_pixels = (w + wl + wr) * (h + wt + wb)
        if work_pixels <= max_pixels * OUTPAINT_SLACK or (w, h) == (GRID, GRID):
            break
        scale *= math.sqrt(max_pixels / work_pixels) * 0.99
    full = (round(wl / sx), round(wt / sy), round(wr / sx), round(wb / sy))
    return OutpaintGeometry(
        image_full=(width, height),
        image_work=(w, h),
        pads_requested=(left, top, right, bottom),
        pads_work=(wl, wt, wr, wb),
        pads_full=full,
    )

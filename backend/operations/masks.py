"""Masks (mode "L", 255 = change) and the full-resolution composite of the masked modes.

The composite is the guarantee the masked modes give: the model's output is scaled to the
input's full size and pasted only where the mask is > 0, so every pixel where it is 0 is
bit-identical to the input. Grow and feather are in input pixels: growing dilates a square
of `grow` pixels; feathering is a box blur of `feather` pixels, so nothing farther than
grow + feather from what was painted can change.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

THRESHOLD = 128


def to_mask(image: Image.Image, size: tuple[int, int] | None = None) -> Image.Image:
    """Any image → a binary L mask (white = change), resized to `size` when given.

    Transparent pixels count as black: a painted layer on a transparent sheet is its strokes.
    """
    if "A" in image.getbands():
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(black, rgba)
    mask = image.convert("L")
    if size is not None and mask.size != size:
        mask = mask.resize(size, Image.Resampling.BILINEAR)
    return threshold(mask)


def threshold(mask: Image.Image, level: int = THRESHOLD) -> Image.Image:
    return mask.point(lambda v: 255 if v >= level else 0)


def is_empty(mask: Image.Image) -> bool:
    return mask.getbbox() is None


def is_full(mask: Image.Image) -> bool:
    return mask.getextrema() == (255, 255)


def _dilate_axis(array: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """1-D max filter of a boolean array via cumulative sums: O(n) for any radius."""
    widths = [(0, 0), (0, 0)]
    widths[axis] = (radius + 1, radius)
    sums = np.cumsum(np.pad(array.astype(np.int32), widths), axis=axis)
    n = array.shape[axis]
    upper = np.take(sums, np.arange(2 * radius + 1, 2 * radius + 1 + n), axis=axis)
    lower = np.take(sums, np.arange(n), axis=axis)
    return (upper - lower) > 0


def grow(mask: Image.Image, pixels: int) -> Image.Image:
    """Dilate a binary mask by a square of `pixels` on each side."""
    if pixels <= 0:
        return mask
    on = np.asarray(mask) > 0
    on = _dilate_axis(_dilate_axis(on, pixels, 0), pixels, 1)
    return Image.fromarray((on * 255).astype(np.uint8), "L")


def feather(mask: Image.Image, pixels: int) -> Image.Image:
    """Soften the edge over `pixels` on each side; an all-white mask stays all white."""
    if pixels <= 0 or is_full(mask):
        return mask
    return mask.filter(ImageFilter.BoxBlur(pixels))


def scale_pixels(pixels: int, factor: float) -> int:
    """A grow/feather distance at another resolution; a non-zero one stays non-zero."""
    return max(1, round(pixels * factor)) if pixels > 0 else 0


def composite(original: Image.Image, generated: Image.Image, mask: Image.Image) -> Image.Image:
    """Paste `generated` (any size; scaled to the original's) where `mask` > 0.

    Where the mask is 0 the original's pixels are kept exactly; where it is 255 the
    generated ones are used exactly; in between they are blended.
    """
    if generated.size != original.size:
        generated = generated.resize(original.size, Image.Resampling.LANCZOS)
    generated = generated.convert(original.mode)
    if mask.size != original.size:
        raise ValueError(f"mask {mask.size} does not match the image {original.size}")
    return Image.composite(generated, original, mask)


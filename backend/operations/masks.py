"""Masks (mode "L", 255 = change) and the full-resolution composite of the masked modes.

The composite is the guarantee the masked modes give: the model's output is scaled to the
input's full size and pasted only where the mask is > 0, so every pixel where it is 0 is
bit-identical to the input. Grow and feather are in input pixels: growing dilates a square
of `grow` pixels; feathering is a box blur of `feather` pixels, so nothing farther than
grow + feather from what was painted can change.

Memory: a job keeps its grown mask as a `PackedMask` (the bits of its bounding box) while it
waits and runs; growing works inside the bounding box; the composite touches only the box of
the mask, pasting into the decoded original in place (no second full-size copy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageChops, ImageFilter

THRESHOLD = 128
Box = tuple[int, int, int, int]
BoolArray = npt.NDArray[np.bool_]


def to_mask(image: Image.Image, size: tuple[int, int] | None = None) -> Image.Image:
    """Any image → a binary L mask (white = change), resized to `size` when given.

    Transparent pixels count as black: a painted layer on a transparent sheet is its strokes.
    (Luminance times alpha: the same as compositing over black, at one byte per pixel.)
    """
    if "A" in image.getbands():
        alpha = image.getchannel("A")
        mask = ImageChops.multiply(image.convert("L"), alpha)
    else:
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


def _dilate_axis(array: BoolArray, radius: int, axis: int) -> BoolArray:
    """1-D max filter of a boolean array over 2·radius + 1 cells: windows doubled in place
    (log2 passes of a byte-wide OR), then two overlapping windows per cell. Works in bytes,
    not int32 sums: a 40 MP mask needs ~3 × 40 MB, not ~600 MB."""
    n = array.shape[axis]
    window = 2 * radius + 1
    widths = [(0, 0), (0, 0)]
    widths[axis] = (radius, radius)
    padded: BoolArray = np.pad(array, widths)
    span = 1
    while 2 * span <= window:        # padded[i] becomes the OR of padded[i : i + 2·span]
        if axis == 0:
            padded[:-span] |= padded[span:]
        else:
            padded[:, :-span] |= padded[:, span:]
        span *= 2
    shift = window - span            # [i, i + span) ∪ [i + shift, i + window) = the window
    if axis == 0:
        return padded[:n] | padded[shift:shift + n]
    return padded[:, :n] | padded[:, shift:shift + n]


def grow(mask: Image.Image, pixels: int) -> Image.Image:
    """Dilate a binary mask by a square of `pixels` on each side (inside its bounding box
    grown by `pixels`: the rest of the mask cannot change)."""
    box = mask.getbbox()
    if pixels <= 0 or box is None:
        return mask
    left, top, right, bottom = box
    width, height = mask.size
    region = (max(0, left - pixels), max(0, top - pixels),
              min(width, right + pixels), min(height, bottom + pixels))
    on: BoolArray = np.asarray(mask.crop(region)) > 0
    on = _dilate_axis(_dilate_axis(on, pixels, 0), pixels, 1)
    grown = Image.new("L", mask.size, 0)
    grown.paste(Image.fromarray(on.view(np.uint8) * np.uint8(255), "L"), region[:2])
    return grown


@dataclass(frozen=True)
class PackedMask:
    """A binary mask as a waiting or running job keeps it: its size, the bounding box of
    what is on, and that box as bits (a 40 MP mask is at most 5 MB; a stroke a few KB)."""

    size: tuple[int, int]
    box: Box | None
    bits: bytes

    @classmethod
    def of(cls, mask: Image.Image) -> PackedMask:
        box = mask.getbbox()
        if box is None:
            return cls(mask.size, None, b"")
        on: BoolArray = np.asarray(mask.crop(box)) > 0
        return cls(mask.size, box, np.packbits(on).tobytes())

    def image(self) -> Image.Image:
        """The mask again: mode L, 255 = change, at its full size."""
        mask = Image.new("L", self.size, 0)
        if self.box is None:
            return mask
        left, top, right, bottom = self.box
        shape = (bottom - top, right - left)
        bits = np.unpackbits(np.frombuffer(self.bits, np.uint8), count=shape[0] * shape[1])
        on = bits.reshape(shape) * np.uint8(255)
        mask.paste(Image.fromarray(on, "L"), (left, top))
        return mask


def feather(mask: Image.Image, pixels: int) -> Image.Image:
    """Soften the edge over `pixels` on each side; an all-white mask stays all white."""
    if pixels <= 0 or is_full(mask):
        return mask
    return mask.filter(ImageFilter.BoxBlur(pixels))


def scale_pixels(pixels: int, factor: float) -> int:
    """A grow/feather distance at another resolution; a non-zero one stays non-zero."""
    return max(1, round(pixels * factor)) if pixels > 0 else 0


def composite(original: Image.Image, generated: Image.Image, mask: Image.Image) -> Image.Image:
    """Paste `generated` (any size; scaled to the original's) where `mask` > 0, on a copy of
    `original` (see `composite_into`, which the modes use on their own fresh decode)."""
    return composite_into(original.copy(), generated, mask)


def composite_into(
    original: Image.Image, generated: Image.Image, mask: Image.Image
) -> Image.Image:
    """Paste `generated` (any size; scaled to the original's) where `mask` > 0, into
    `original` itself (returned): a full-resolution decode becomes the result, with no
    second full-size copy.

    Where the mask is 0 the original's pixels are kept exactly; where it is 255 the
    generated ones are used exactly; in between they are blended. Only the mask's bounding
    box is scaled and blended (Pillow's resize with a source box: the same filter as scaling
    the whole picture and cropping).
    """
    if mask.size != original.size:
        raise ValueError(f"mask {mask.size} does not match the image {original.size}")
    box = mask.getbbox()
    if box is None:
        return original
    left, top, right, bottom = box
    sx, sy = generated.width / original.width, generated.height / original.height
    region = generated.resize(
        (right - left, bottom - top), Image.Resampling.LANCZOS,
        box=(left * sx, top * sy, right * sx, bottom * sy),
    ).convert(original.mode)
    original.paste(region, (left, top), mask.crop(box))
    return original

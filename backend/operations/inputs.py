"""A request's input picture as a job holds it: what was sent, the working-size picture the
model gets (decoded straight to that size), and the size of the full-resolution result.

Memory (issue 9): nothing here keeps the input's full-size pixels. The masked modes decode
them again, once, in `assemble` (`InputImage.full`), one job at a time (backend/jobs.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from backend.requests import ImageInput
from backend.settings import Settings

from .base import check_image_present
from .images import (
    ImageHeader,
    capped_size,
    decode_image,
    encode_png,
    flatten,
    megapixels,
    read_header,
    resize_to,
)
from .sizing import working_size


@dataclass(frozen=True)
class InputImage:
    """`source` is what was sent (file bytes, or the image a surface handed over); `size` the
    input as displayed; `full_size` the size a full-resolution result has (`size`, capped at
    `max_result_pixels` for modes that keep the full size); `work` the picture the model gets
    (RGB, flattened onto white); `max_pixels` the decoding limit it was checked against."""

    source: ImageInput
    size: tuple[int, int]
    full_size: tuple[int, int]
    work: Image.Image
    max_pixels: int
    field: str = "image"

    def png(self) -> bytes:
        """The upload: the working-size picture as PNG."""
        return encode_png(self.work)

    @property
    def scale(self) -> float:
        """Working pixels per full-size pixel (the mean of both axes' tiny rounding
        differences)."""
        return (self.work.width / self.full_size[0] + self.work.height / self.full_size[1]) / 2

    def full(self, *, keep_alpha: bool = False) -> Image.Image:
        """The input at `full_size`: decoded again from what was sent (the composite's
        original). RGB flattened onto white, or RGB/RGBA as sent with `keep_alpha`. At the
        input's own size the pixels are exactly the file's."""
        image = decode_image(
            self.source, max_pixels=self.max_pixels, field=self.field, fit=self.full_size,
        )
        if not keep_alpha:
            image = flatten(image)
        image = resize_to(image, self.full_size)
        # The composite pastes into what this returns: never into the caller's own picture.
        return image.copy() if image is self.source else image


def header_of(data: ImageInput, settings: Settings, field: str = "image") -> ImageHeader:
    """The picture's format and displayed size without decoding it (InvalidRequest if it is
    not one the studio takes)."""
    check_image_present(data, field)
    return read_header(data, max_pixels=settings.max_input_pixels, field=field)


def load_input(
    data: ImageInput,
    settings: Settings,
    notes: list[str],
    *,
    field: str = "image",
    label: str = "The image",
    upscale_small: bool = True,
    full_result: bool = False,
    keep_alpha: bool = False,
    sizes: tuple[tuple[int, int], tuple[int, int]] | None = None,
) -> InputImage:
    """Read the header, then decode straight to the working size. `full_result`: the mode's
    result keeps the input's size, capped at `max_result_pixels` (a note says when). With
    `keep_alpha` the working picture keeps its transparency (background removal). `sizes`
    (full, work): a mode that planned both itself (outpaint's canvas) and noted why."""
    header = header_of(data, settings, field)
    size = header.size
    if sizes is not None:
        full_size, work_size = sizes
    else:
        full_size = capped_size(size, settings.max_result_pixels) if full_result else size
        if full_size != size:
            notes.append(
                f"{label} is {size[0]}×{size[1]} ({megapixels(header.pixels)}); results are "
                f"at most {megapixels(settings.max_result_pixels)}, so it was used at "
                f"{full_size[0]}×{full_size[1]}."
            )
        work_size = working_size(*full_size, max_pixels=settings.max_sampling_pixels,
                                 upscale_small=upscale_small)
    decoded = decode_image(data, max_pixels=settings.max_input_pixels, field=field,
                           notes=notes, fit=work_size)
    work = resize_to(decoded if keep_alpha else flatten(decoded), work_size)
    if sizes is None:
        _note_scaling(notes, label, size, work_size)
    return InputImage(data, size, full_size, work, settings.max_input_pixels, field)


def to_working(
    image: Image.Image, settings: Settings, notes: list[str], label: str, upscale_small: bool
) -> Image.Image:
    """An already decoded picture at the working size (a note when that is real scaling)."""
    size = working_size(*image.size, max_pixels=settings.max_sampling_pixels,
                        upscale_small=upscale_small)
    _note_scaling(notes, label, image.size, size)
    return resize_to(image, size)


def _note_scaling(
    notes: list[str], label: str, size: tuple[int, int], work: tuple[int, int]
) -> None:
    # Notes only for real rescaling, not for the few pixels of grid rounding.
    if abs(work[0] * work[1] / (size[0] * size[1]) - 1) > 0.05:
        notes.append(
            f"{label} was scaled from {size[0]}×{size[1]} to {work[0]}×{work[1]} "
            "for the model."
        )

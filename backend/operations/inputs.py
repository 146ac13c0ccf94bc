"""Turning a request's input image into the full-resolution original and the upload."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from backend.requests import ImageInput
from backend.settings import Settings

from .base import check_image_present
from .images import decode_image, encode_png, flatten
from .sizing import working_size


@dataclass(frozen=True)
class InputImage:
    """The decoded input at full resolution (RGB, flattened onto white) and as uploaded."""

    full: Image.Image
    work: Image.Image

    def png(self) -> bytes:
        """The upload: the working-size picture as PNG."""
        return encode_png(self.work)

    @property
    def scale(self) -> float:
        """Working pixels per input pixel (the mean of both axes' tiny rounding differences)."""
        return (self.work.width / self.full.width + self.work.height / self.full.height) / 2


def load_input(
    data: ImageInput,
    settings: Settings,
    notes: list[str],
    *,
    field: str = "image",
    label: str = "The image",
    upscale_small: bool = True,
) -> InputImage:
    check_image_present(data, field)
    full = flatten(decode_image(data, max_pixels=settings.max_input_pixels, field=field,
                                notes=notes))
    return InputImage(full, to_working(full, settings, notes, label, upscale_small))


def to_working(
    image: Image.Image, settings: Settings, notes: list[str], label: str, upscale_small: bool
) -> Image.Image:
    size = working_size(*image.size, max_pixels=settings.max_sampling_pixels,
                        upscale_small=upscale_small)
    if size == image.size:
        return image
    # Notes only for real rescaling, not for the few pixels of grid rounding.
    if abs(size[0] * size[1] / (image.width * image.height) - 1) > 0.05:
        notes.append(
            f"{label} was scaled from {image.width}×{image.height} to {size[0]}×{size[1]} "
            "for the model."
        )
    return image.resize(size, Image.Resampling.LANCZOS)

"""Safe image decoding and the small pixel helpers every mode shares.

Policy (one place, so every mode treats inputs the same way):
- Only PNG, JPEG, WebP, GIF, BMP and TIFF are accepted; Pillow's other plugins (EPS through
  Ghostscript, PSD, ...) are never tried.
- The pixel limit is checked from the header, before any pixel is decoded.
- Animated files use their first frame (a note says so); EXIF orientation is applied.
- The result is always RGB or RGBA: palette, grayscale, CMYK and 16-bit inputs are converted
  (16-bit by keeping the high byte, not by clipping as Pillow's own convert does).
- Alpha: the edit family (edit, multi-ref, region edit, inpaint, outpaint) works on RGB, so a
  transparent input is flattened onto white (`flatten`); background removal keeps the alpha
  to combine it with the new one.
"""

from __future__ import annotations

import io
import logging
import warnings
from struct import error as struct_error
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

from backend.requests import InvalidRequest

log = logging.getLogger(__name__)

ALLOWED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
# Pillow reports multi-picture camera JPEGs as MPO; they are JPEGs to the user.
_ACCEPTED_REPORTED = frozenset(ALLOWED_FORMATS) | {"MPO"}
WHITE = (255, 255, 255)


def megapixels(pixels: int) -> str:
    mp = pixels / 1_000_000
    return f"{mp:.0f} MP" if mp >= 10 else f"{mp:.1f} MP"


def _too_big(width: int, height: int, max_pixels: int, field: str) -> InvalidRequest:
    return InvalidRequest(
        f"The image is {width}×{height} = {megapixels(width * height)}; the limit is "
        f"{megapixels(max_pixels)}. Scale it down and try again.",
        field,
    )


def _open_header(data: bytes) -> Image.Image:
    """Open without Pillow's global decompression-bomb check (we apply our own limit).

    Used only after Image.open refused a huge header, to read its size for the message.
    """
    Image.init()
    for fmt in ALLOWED_FORMATS:
        factory, accept = Image.OPEN[fmt]
        if accept is None or accept(data[:16]):
            try:
                return factory(io.BytesIO(data), "")
            except (OSError, SyntaxError, ValueError):
                continue
    raise UnidentifiedImageError("no plugin accepted the header")


def decode_image(
    data: bytes | Image.Image,
    *,
    max_pixels: int,
    field: str = "image",
    notes: list[str] | None = None,
) -> Image.Image:
    """Bytes or a PIL image → a loaded RGB or RGBA image, or InvalidRequest saying why not.

    `notes` (when given) collects sentences for the user, e.g. that a GIF's first frame was used.
    """
    if isinstance(data, Image.Image):
        image = data
        if image.width * image.height > max_pixels:
            raise _too_big(image.width, image.height, max_pixels, field)
    else:
        if not data:
            raise InvalidRequest("The image is empty (0 bytes).", field)
        image = _open_checked(data, max_pixels, field)
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as exc:
            log.info("decode failed: %s", exc)
            raise InvalidRequest(
                f"The {image.format} file is damaged or incomplete ({exc}); "
                "export or upload it again.",
                field,
            ) from None
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        image.seek(0)
        if notes is not None:
            notes.append(f"The image is animated ({frames} frames); the first frame was used.")
    image = ImageOps.exif_transpose(image)
    return to_rgb_or_rgba(image)


def _open_checked(data: bytes, max_pixels: int, field: str) -> Image.Image:
    image: Image.Image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError:
        try:
            image = _open_header(data)
        except UnidentifiedImageError:
            raise InvalidRequest(
                f"The image is larger than the limit of {megapixels(max_pixels)}.", field
            ) from None
    except UnidentifiedImageError:
        raise InvalidRequest(
            "This file is not an image the studio can read; use PNG, JPEG, WebP, GIF, BMP or TIFF.",
            field,
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidRequest(f"The image header could not be read ({exc}).", field) from None
    if image.format not in _ACCEPTED_REPORTED:
        raise InvalidRequest(f"{image.format} images are not accepted; use PNG or JPEG.", field)
    width, height = image.size
    if width * height > max_pixels:
        raise _too_big(width, height, max_pixels, field)
    if width < 1 or height < 1:
        raise InvalidRequest("The image has no pixels.", field)
    return image


def to_rgb_or_rgba(image: Image.Image) -> Image.Image:
    """Any Pillow mode → RGB, or RGBA when the image carries transparency."""
    mode = image.mode
    if mode in ("RGB", "RGBA"):
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return Image.fromarray(_to_8bit(np.asarray(image)), "L").convert("RGB")
    if mode in ("LA", "La", "PA", "RGBa"):
        return image.convert("RGBA")
    if mode == "P":
        palette = image.palette
        has_alpha = "transparency" in image.info or (palette is not None and palette.mode == "RGBA")
        return image.convert("RGBA" if has_alpha else "RGB")
    return image.convert("RGB")  # 1, L, CMYK, YCbCr, LAB, HSV, RGBX


def _to_8bit(array: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """16-bit or float grayscale → uint8, scaling the range instead of clipping it."""
    if array.dtype.kind == "f":
        top = 1.0 if float(np.nanmax(array, initial=0.0)) <= 1.0 else 255.0
        scaled: npt.NDArray[np.float64] = np.nan_to_num(array) * (255.0 / top)
        return np.clip(scaled, 0, 255).round().astype(np.uint8)
    wide: npt.NDArray[np.int64] = array.astype(np.int64)
    return (np.clip(wide, 0, 65535) >> 8).astype(np.uint8)


def flatten(image: Image.Image, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """RGBA → RGB over `background` (the edit family's rule); RGB passes through unchanged."""
    if image.mode == "RGB":
        return image
    rgba = image.convert("RGBA")
    canvas = Image.new("RGB", rgba.size, background)
    canvas.paste(rgba, mask=rgba.getchannel("A"))
    return canvas


def encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)  # speed over size: it goes to loopback/LAN
    return buffer.getvalue()


OUTPUT_FORMATS = frozenset({"PNG", "JPEG", "WEBP"})


def decode_output(data: bytes) -> Image.Image:
    """An image ComfyUI produced (trusted size). The file is checked whole (PNG chunk CRCs
    through `verify()`, well under a millisecond) but the pixels are decoded only when a
    consumer first touches them, so a job that just hands its result on (the API's bytes, a
    saved file) does not pay a full decode on the job's critical path. A damaged file raises
    OSError here, where the job can still turn it into a Failed event."""
    try:
        probe = Image.open(io.BytesIO(data))
        if probe.format not in OUTPUT_FORMATS:
            raise OSError(f"unexpected output format {probe.format!r}")
        if probe.format == "PNG":
            probe.verify()
    except (SyntaxError, ValueError, struct_error) as exc:  # Pillow's other damage signals
        raise OSError(str(exc)) from exc
    return Image.open(io.BytesIO(data))

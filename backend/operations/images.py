"""Safe image decoding and the small pixel helpers every mode shares.

Policy (one place, so every mode treats inputs the same way):
- Only PNG, JPEG, WebP, GIF, BMP and TIFF are accepted; Pillow's other plugins (EPS through
  Ghostscript, PSD, ...) are never tried.
- The pixel limit (`Settings.max_input_pixels`, 200 MP: what phone cameras make) is checked
  from the header, before any pixel is decoded (`read_header`, `check_upload`); over it is a
  decompression bomb.
- A caller that scales the picture anyway says to what size (`fit`): JPEGs then decode
  straight to the nearest larger DCT scale (1/2, 1/4, 1/8), other formats are reduced by a
  whole factor right after loading, so a waiting or running job never holds a large picture
  in full. Only the final composite of the masked modes decodes the full size (capped at
  `Settings.max_result_pixels`), one job at a time (backend/jobs.py).
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
import math
import warnings
from dataclasses import dataclass
from struct import error as struct_error
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import ExifTags, Image, UnidentifiedImageError

from backend.limits import describe_bytes
from backend.requests import InvalidRequest
from backend.settings import Settings

log = logging.getLogger(__name__)

ALLOWED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
# Pillow reports multi-picture camera JPEGs as MPO; they are JPEGs to the user.
_ACCEPTED_REPORTED = frozenset(ALLOWED_FORMATS) | {"MPO"}
WHITE = (255, 255, 255)


def megapixels(pixels: int) -> str:
    mp = pixels / 1_000_000
    return f"{mp:.0f} MP" if mp >= 10 else f"{mp:.1f} MP"


# EXIF orientations that swap width and height, and the transposition each one needs.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_SIDES = frozenset({5, 6, 7, 8})
# Modes Image.reduce() takes; others are converted first (to the smallest one that fits).
_REDUCIBLE = frozenset({"L", "LA", "La", "RGB", "RGBA", "RGBa", "CMYK", "I", "F"})
# After a whole-factor reduce the picture keeps at least this many times the size it is
# scaled to, so the final Lanczos step still has the detail to work with (Pillow's own
# `reducing_gap` rule). JPEG's DCT scaling filters properly: it may go down to the size.
REDUCING_GAP = 2.0


@dataclass(frozen=True)
class ImageHeader:
    """What a picture file says about itself, read without decoding a pixel. `width` and
    `height` are as displayed (EXIF orientation applied)."""

    format: str
    width: int
    height: int
    orientation: int = 1

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def describe(self) -> str:
        """"JPEG, 4000×3000 (12 MP)": for an upload's caption."""
        return f"{self.format}, {self.width}×{self.height} ({megapixels(self.pixels)})"


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


def read_header(
    data: bytes | Image.Image, *, max_pixels: int, field: str = "image"
) -> ImageHeader:
    """The format and size of a picture file, or InvalidRequest saying why it is not one the
    studio takes (not a picture, a damaged header, over the pixel limit). No pixel is decoded:
    cheap enough for every upload, and safe against decompression bombs. (An image a surface
    already decoded is checked against the limit the same way.)"""
    if isinstance(data, Image.Image):
        image = data
        if image.width * image.height > max_pixels:
            raise _too_big(image.width, image.height, max_pixels, field)
    elif not data:
        raise InvalidRequest("The image is empty (0 bytes).", field)
    else:
        image = _open_checked(data, max_pixels, field)
        if image.format == "PNG":
            _verify_png(data, field)
    orientation = _orientation(image)
    width, height = image.size
    if orientation in _SWAPS_SIDES:
        width, height = height, width
    fmt = "JPEG" if image.format == "MPO" else str(image.format or "image")
    return ImageHeader(fmt, width, height, orientation)


def check_upload(data: bytes, settings: Settings, field: str = "image") -> ImageHeader:
    """The check a surface makes the moment a picture is uploaded (before any job): the byte
    limit, then the header (format, size in pixels, the decompression-bomb limit). Raises
    InvalidRequest with the sentence to show; returns the header for a caption
    (`header.describe()`). Pictures above `max_result_pixels` are accepted: they are scaled
    down on load, and the job says so."""
    if len(data) > settings.max_upload_bytes:
        raise InvalidRequest(
            f"The file is {describe_bytes(len(data))}; the limit is "
            f"{describe_bytes(settings.max_upload_bytes)}.",
            field,
        )
    return read_header(data, max_pixels=settings.max_input_pixels, field=field)


def decode_image(
    data: bytes | Image.Image,
    *,
    max_pixels: int,
    field: str = "image",
    notes: list[str] | None = None,
    fit: tuple[int, int] | None = None,
    gray: bool = False,
) -> Image.Image:
    """Bytes or a PIL image → a loaded RGB or RGBA image, or InvalidRequest saying why not.

    `notes` (when given) collects sentences for the user, e.g. that a GIF's first frame was
    used. `fit` (as displayed) is the size the caller scales the picture to next: the image
    returned is then smaller than the file's where that is cheap (never smaller than `fit`),
    and the full size is never held at once for a JPEG. Without `fit` (or when no reduction
    applies) the pixels are exactly the file's. `gray`: a grayscale file stays L or LA (a
    mask: one byte a pixel, not three).
    """
    if isinstance(data, Image.Image):
        image = data
        if image.width * image.height > max_pixels:
            raise _too_big(image.width, image.height, max_pixels, field)
        orientation = _orientation(image)
    else:
        if not data:
            raise InvalidRequest("The image is empty (0 bytes).", field)
        image = _open_checked(data, max_pixels, field)
        orientation = _orientation(image)
        if fit is not None and image.format in ("JPEG", "MPO"):
            stored = _stored_size(fit, orientation)
            if image.width >= 2 * stored[0] and image.height >= 2 * stored[1]:
                image.draft(None, stored)   # decode at the DCT scale just above `fit`
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
    if fit is not None:
        image = _reduce(image, _stored_size(fit, orientation))
    if gray and image.mode in ("1", "L", "LA", "La"):
        image = image.convert("LA" if "A" in image.mode else "L") if image.mode != "L" else image
    else:
        image = to_rgb_or_rgba(image)
    method = _TRANSPOSE.get(orientation)
    return image.transpose(method) if method is not None else image


def _verify_png(data: bytes, field: str) -> None:
    """Every chunk there and its CRC right (no pixel decoded: ~1 ms a MB), so a cut-off or
    damaged PNG is refused on upload, not when its job's turn comes."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(data), formats=("PNG",))
            probe.verify()
    except Image.DecompressionBombError:
        return      # a huge header: read_header's own size check words the refusal
    except (OSError, SyntaxError, ValueError, struct_error) as exc:
        raise InvalidRequest(
            f"The PNG file is damaged or incomplete ({exc}); export or upload it again.", field
        ) from None


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation, read without decoding pixels (a PNG's only when its eXIf chunk
    comes before the pixel data, as writers put it: Pillow would decode the whole picture to
    look for one after it, and the header and the decode must agree)."""
    if image.format == "PNG" and "exif" not in image.info:
        return 1
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except (OSError, SyntaxError, ValueError, struct_error):
        return 1
    return value if isinstance(value, int) and value in _TRANSPOSE else 1


def _stored_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """A displayed size in the file's own (unrotated) orientation."""
    return (size[1], size[0]) if orientation in _SWAPS_SIDES else size


def _reduce(image: Image.Image, fit: tuple[int, int]) -> Image.Image:
    """Shrink by a whole factor while keeping REDUCING_GAP × `fit` (a box filter: cheap,
    and what Pillow's own resize does before its final step)."""
    factor = int(min(image.width / max(1, fit[0]), image.height / max(1, fit[1]))
                 / REDUCING_GAP)
    if factor < 2:
        return image
    if image.mode not in _REDUCIBLE:
        image = _reducible(image)
    return image.reduce(factor)


def _reducible(image: Image.Image) -> Image.Image:
    """The same picture in a mode Image.reduce() takes (1-bit as L: one byte, not three)."""
    if image.mode == "1":
        return image.convert("L")
    return to_rgb_or_rgba(image)


def capped_size(size: tuple[int, int], max_pixels: int) -> tuple[int, int]:
    """`size` scaled down (aspect kept, sides rounded down) to at most `max_pixels`."""
    width, height = size
    if width * height <= max_pixels:
        return size
    scale = math.sqrt(max_pixels / (width * height))
    return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))


def resize_to(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Lanczos to exactly `size` (no copy when it already is)."""
    return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)


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
    """16-bit or float grayscale → uint8, scaling the range instead of clipping it. Works in
    the array's own width (a 40 MP 16-bit picture must not become 320 MB of int64)."""
    if array.dtype.kind == "f":
        top = 1.0 if float(np.nanmax(array, initial=0.0)) <= 1.0 else 255.0
        scaled: npt.NDArray[np.float64] = np.nan_to_num(array) * (255.0 / top)
        return np.clip(scaled, 0, 255).round().astype(np.uint8)
    if array.dtype.kind == "u" and array.dtype.itemsize == 2:
        high: npt.NDArray[np.uint8] = (array >> 8).astype(np.uint8)
        return high
    clipped: npt.NDArray[np.int64] = np.clip(array, 0, 65535)
    return (clipped >> 8).astype(np.uint8)


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
    """An image ComfyUI produced (trusted size), checked whole (PNG chunk CRCs through
    `verify()`) and decoded here, on the caller's worker thread. Not lazily: a result is used
    from several threads at once (the library encodes it while a tab or the chat draws it), and
    Pillow's lazy load is not thread-safe (two loads at once failed inside PngImagePlugin). A
    damaged file raises OSError here, where the job can still turn it into a Failed event."""
    try:
        probe = Image.open(io.BytesIO(data))
        if probe.format not in OUTPUT_FORMATS:
            raise OSError(f"unexpected output format {probe.format!r}")
        if probe.format == "PNG":
            probe.verify()
        image = Image.open(io.BytesIO(data))
        image.load()
    except (SyntaxError, ValueError, struct_error) as exc:  # Pillow's other damage signals
        raise OSError(str(exc)) from exc
    return image

"""Every input of the bad-input matrix, built in memory (no fixture files to keep in git).

Each builder returns file bytes as a browser or an API client would send them. The expected
look of the good-but-odd ones (what the studio should hand to ComfyUI) sits beside them, so a
test can check "correct result" without knowing how the picture was made.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib

import numpy as np
from PIL import Image

RED = (220, 30, 30)
GREEN = (30, 200, 60)
BLUE = (30, 60, 220)
WHITE = (255, 255, 255)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def picture(size: tuple[int, int] = (96, 64), colour: tuple[int, int, int] = BLUE) -> Image.Image:
    """A plain picture with a white stripe, so orientation and scaling are visible."""
    image = Image.new("RGB", size, colour)
    image.paste(WHITE, (0, 0, size[0], max(1, size[1] // 8)))   # a stripe along the top
    return image


# --- unreadable ---------------------------------------------------------------------------


def not_an_image() -> bytes:
    return b"%PDF-1.4\nThis is a text document, not a picture.\n"


def truncated_png() -> bytes:
    """A real PNG (noise, so the data is not tiny) cut in the middle of its pixel data."""
    rng = np.random.default_rng(7)
    data = png(Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), "RGB"))
    return data[: len(data) // 2]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _zeros_zlib(total: int, chunk: int = 1 << 20) -> bytes:
    """A zlib stream that inflates to `total` zero bytes, built without compressing them all:
    one fully flushed deflate segment (independent of what came before) repeated."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = deflate.compress(bytes(chunk)) + deflate.flush(zlib.Z_FULL_FLUSH)
    count, rest = divmod(total, chunk)
    last = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = last.compress(bytes(rest)) + last.flush(zlib.Z_FINISH)
    adler = ((total % 65521) << 16) | 1          # adler32 of `total` zero bytes
    return b"\x78\xda" + segment * count + tail + struct.pack(">I", adler)


@functools.cache
def bomb_png(width: int = 30_000, height: int = 30_000, bits: int = 1) -> bytes:
    """A decompression bomb: a ~100 KB PNG whose header is `width`×`height` and whose pixel
    data really inflates to that many (black) pixels, so decoding it would cost ~1 byte per
    pixel of memory (Pillow keeps 1-bit images one byte per pixel)."""
    row = 1 + (width * bits + 7) // 8     # filter byte + packed grey samples
    header = struct.pack(">IIBBBBB", width, height, bits, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", _zeros_zlib(row * height)) + _chunk(b"IEND", b""))


def oversized_png(limit: int) -> bytes:
    """A real PNG just over `limit` bytes (noise does not compress)."""
    side = int((limit / 3) ** 0.5) + 64
    rng = np.random.default_rng(3)
    data = png(Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8), "RGB"))
    assert len(data) > limit
    return data


# --- readable but odd: each comes with what the studio should make of it -----------------


def animated_gif() -> bytes:
    """Two frames: red first, green second. The studio must use the red one."""
    frames = [Image.new("RGB", (96, 64), RED), Image.new("RGB", (96, 64), GREEN)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100,
                   loop=0)
    return buffer.getvalue()


def cmyk_jpeg() -> bytes:
    """Pure red in CMYK (no cyan, full magenta and yellow)."""
    buffer = io.BytesIO()
    Image.new("CMYK", (96, 64), (0, 255, 255, 0)).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def png_16bit() -> bytes:
    """16-bit grey at 0xC000: 75% grey, which must become 192 (not clipped to 255)."""
    array = np.full((64, 96), 0xC000, dtype=np.uint16)
    return png(Image.fromarray(array, "I;16"))


def palette_png() -> bytes:
    """A palette image: left half red, right half blue."""
    image = Image.new("RGB", (96, 64), RED)
    image.paste(BLUE, (48, 0, 96, 64))
    return png(image.convert("P", palette=Image.Palette.ADAPTIVE, colors=4))


def exif_rotated_jpeg() -> bytes:
    """Stored 120×60 (landscape) with EXIF orientation 6: people see it 60×120 (portrait)."""
    stored = picture((120, 60), BLUE)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.save(buffer, format="JPEG", quality=95, exif=exif)
    return buffer.getvalue()


def rgba_png() -> bytes:
    """Transparent everywhere except an opaque blue square in the middle."""
    image = Image.new("RGBA", (96, 64), (0, 0, 0, 0))
    image.paste((*BLUE, 255), (32, 16, 64, 48))
    return png(image)


def mask_png(size: tuple[int, int], value: int) -> bytes:
    """A black/white mask without alpha (API semantics: white = change)."""
    return png(Image.new("L", size, value))


def near(colour: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 24) -> bool:
    return all(abs(int(a) - int(b)) <= tolerance for a, b in zip(colour, expected, strict=False))

"""Safe decoding: what a browser or an API client can throw at the studio."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from backend.operations.images import decode_image, flatten
from backend.requests import InvalidRequest

LIMIT = 40_000_000


def encode(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims a size; only a few bytes of (wrong-sized) pixel data follow."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + png_chunk(b"IEND", b"")
    )


def noise(width: int = 64, height: int = 48) -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def test_not_an_image_names_the_formats() -> None:
    with pytest.raises(InvalidRequest) as info:
        decode_image(b"hello, this is text", max_pixels=LIMIT)
    assert "PNG" in info.value.message and "JPEG" in info.value.message
    assert info.value.field == "image"


def test_empty_bytes() -> None:
    with pytest.raises(InvalidRequest, match="empty"):
        decode_image(b"", max_pixels=LIMIT)


def test_format_outside_the_allowed_list_is_refused() -> None:
    # PCX is a format Pillow reads, but not one the studio accepts.
    with pytest.raises(InvalidRequest, match="PNG, JPEG"):
        decode_image(encode(noise(), "PCX"), max_pixels=LIMIT)


def test_truncated_png_is_a_clear_error() -> None:
    data = encode(noise(256, 256))
    with pytest.raises(InvalidRequest, match="damaged or incomplete"):
        decode_image(data[: len(data) // 2], max_pixels=LIMIT)


def test_bomb_header_is_refused_with_its_size_before_decoding() -> None:
    with pytest.raises(InvalidRequest) as info:
        decode_image(png_header_claiming(30000, 30000), max_pixels=LIMIT)
    assert "30000×30000 = 900 MP" in info.value.message
    assert "limit is 40 MP" in info.value.message


def test_size_over_our_limit_but_under_pillows_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="8000×6000 = 48 MP"):
        decode_image(png_header_claiming(8000, 6000), max_pixels=LIMIT)


def test_pil_image_over_the_limit_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="limit"):
        decode_image(Image.new("RGB", (100, 100)), max_pixels=5000)


def test_animated_gif_uses_the_first_frame_and_says_so() -> None:
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    notes: list[str] = []
    image = decode_image(data, max_pixels=LIMIT, notes=notes)
    assert image.mode == "RGB"
    assert image.getpixel((5, 5)) == (255, 0, 0)
    assert notes and "3 frames" in notes[0] and "first frame" in notes[0]


def test_cmyk_jpeg_becomes_rgb_with_the_right_colour() -> None:
    cmyk = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # pure red in CMYK
    image = decode_image(encode(cmyk, "JPEG", quality=95), max_pixels=LIMIT)
    assert image.mode == "RGB"
    r, g, b = image.getpixel((16, 16))
    assert r > 200 and g < 60 and b < 60


def test_16_bit_png_is_scaled_not_clipped() -> None:
    array = np.full((16, 16), 0x8000, dtype=np.uint16)
    array[0, 0] = 0xFFFF
    data = encode(Image.fromarray(array, "I;16"))
    image = decode_image(data, max_pixels=LIMIT)
    assert image.mode == "RGB"
    assert image.getpixel((8, 8)) == (128, 128, 128)  # Pillow's own convert would give 255
    assert image.getpixel((0, 0)) == (255, 255, 255)


def test_palette_png_with_transparency_becomes_rgba() -> None:
    palette = Image.new("P", (16, 16), 1)
    palette.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
    palette.paste(0, (0, 0, 8, 16))
    data = encode(palette, transparency=0)
    image = decode_image(data, max_pixels=LIMIT)
    assert image.mode == "RGBA"
    assert image.getpixel((2, 2))[3] == 0
    assert image.getpixel((12, 2)) == (200, 30, 30, 255)


def test_palette_png_without_transparency_becomes_rgb() -> None:
    palette = Image.new("P", (16, 16), 1)
    palette.putpalette([0, 0, 0, 10, 120, 240] + [0] * 762)
    image = decode_image(encode(palette), max_pixels=LIMIT)
    assert image.mode == "RGB" and image.getpixel((3, 3)) == (10, 120, 240)


def test_exif_orientation_is_applied() -> None:
    source = Image.new("RGB", (40, 20), (0, 0, 255))
    source.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    image = decode_image(encode(source, "JPEG", quality=95, exif=exif), max_pixels=LIMIT)
    assert image.size == (20, 40)
    r, _, b = image.getpixel((10, 5))  # the left half is now on top
    assert r > 200 and b < 60


def test_rgba_keeps_alpha_and_flattens_onto_white() -> None:
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    rgba.putpixel((1, 1), (255, 0, 0, 255))
    image = decode_image(encode(rgba), max_pixels=LIMIT)
    assert image.mode == "RGBA"
    flat = flatten(image)
    assert flat.mode == "RGB"
    assert flat.getpixel((5, 5)) == (255, 255, 255)
    assert flat.getpixel((1, 1)) == (255, 0, 0)


def test_grayscale_with_alpha_becomes_rgba() -> None:
    image = decode_image(encode(Image.new("LA", (4, 4), (90, 128))), max_pixels=LIMIT)
    assert image.mode == "RGBA" and image.getpixel((0, 0)) == (90, 90, 90, 128)


def test_webp_bmp_tiff_are_accepted() -> None:
    for fmt in ("WEBP", "BMP", "TIFF"):
        image = decode_image(encode(noise(), fmt), max_pixels=LIMIT)
        assert image.size == (64, 48) and image.mode == "RGB"

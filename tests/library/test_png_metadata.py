"""backend/library/png.py: parameters and the graph travel in PNG text chunks and come back."""

from __future__ import annotations

import io
import json

from PIL import Image, PngImagePlugin

from backend.library import png as metadata
from backend.modes import REGISTRY

KNOWN = REGISTRY.parameter_names()


def test_round_trip_keeps_pixels_alpha_parameters_and_graph(tmp_path):
    image = Image.new("RGBA", (7, 5), (10, 20, 30, 0))
    image.putpixel((3, 2), (200, 100, 50, 128))
    params = {"mode": "generate", "prompt": "a banana", "seed": 42, "steps": 8, "cfg": 2.5,
              "width": 7, "height": 5, "variant": None}
    graph = {"3": {"class_type": "KSampler", "inputs": {"seed": 42}}}
    path = tmp_path / "x.png"
    path.write_bytes(metadata.png_bytes(image, params, graph))

    back = Image.open(path)
    assert back.mode == "RGBA"
    assert list(back.getdata()) == list(image.getdata())
    assert metadata.read_parameters(path, KNOWN) == params
    assert metadata.read_workflow(path) == graph
    # ComfyUI reads the API graph from "prompt"; we never put an API graph under "workflow".
    chunks = metadata.read_text_chunks(path)
    assert json.loads(chunks["prompt"]) == graph
    assert "workflow" not in chunks


def test_reads_from_bytes_and_from_an_opened_image():
    data = metadata.png_bytes(Image.new("RGB", (2, 2)), {"mode": "edit", "prompt": "p"})
    assert metadata.read_parameters(data, KNOWN) == {"mode": "edit", "prompt": "p"}
    assert metadata.read_parameters(Image.open(io.BytesIO(data)), KNOWN) == {"mode": "edit", "prompt": "p"}


def test_foreign_or_broken_files_restore_nothing(tmp_path):
    plain = tmp_path / "plain.png"
    Image.new("RGB", (2, 2)).save(plain)
    assert metadata.read_parameters(plain, KNOWN) is None

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat, Steps: 20, Sampler: Euler")  # A1111's plain text
    a1111 = tmp_path / "a1111.png"
    Image.new("RGB", (2, 2)).save(a1111, pnginfo=info)
    assert metadata.read_parameters(a1111, KNOWN) is None

    assert metadata.read_parameters(b"not a png at all", KNOWN) is None
    assert metadata.read_parameters(tmp_path / "missing.png", KNOWN) is None


def test_known_parameters_come_from_the_modes():
    # The common knobs, the size, and every mode's declared inputs but its pictures.
    assert {"mode", "prompt", "negative_prompt", "seed", "steps", "cfg", "width", "height",
            "variant", "region", "grow", "feather", "left", "top", "right", "bottom",
            "feathering", "output_size", "main"} == KNOWN


def test_unknown_keys_are_dropped():
    data = metadata.png_bytes(Image.new("RGB", (1, 1)), {"mode": "edit", "evil": "x", "seed": 1})
    assert metadata.read_parameters(data, KNOWN) == {"mode": "edit", "seed": 1}


def _header_only_png(width: int, height: int) -> bytes:
    """A PNG that claims `width`×`height` (no pixel data: Pillow refuses it from the header)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def test_a_decompression_bomb_has_no_metadata_and_never_raises(tmp_path):
    """A 30000×30000 header: Pillow raises DecompressionBombError (not an OSError) on open;
    the upload handler that reads a dropped PNG's parameters must get {} and go on."""
    bomb = _header_only_png(30_000, 30_000)
    assert metadata.read_text_chunks(bomb) == {}
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    assert metadata.read_parameters(path, KNOWN) is None

"""Bad-input matrix, API surface: `/v1/images/edits` and `/v1/images/generations` with every
input of tests/matrix/inputs.py. Each row ends in a clear error (status, param, message) or
a correct result (checked on what ComfyUI was given and on what came back).

docs/robustness.md has the same rows as a table.
"""

from __future__ import annotations

import base64
import io
import resource
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.matrix import inputs
from tests.matrix.conftest import MatrixStudio
from tests.matrix.surfaces import assert_actionable, comfy_addresses, loaded_images

pytestmark = pytest.mark.timeout(60)
RSS_GROWTH_LIMIT_MB = 100


def image_field(data: bytes, name: str = "in.png", key: str = "image") -> tuple[str, Any]:
    return (key, (name, data, "application/octet-stream"))


PICTURE = inputs.png(inputs.picture())


@dataclass(frozen=True)
class Refused:
    """A row that must end in an error: HTTP status, the parameter named, words in the message."""

    case: str
    files: Callable[[], list[tuple[str, Any]]]
    status: int
    param: str
    needles: tuple[str, ...]
    data: dict[str, str] = field(default_factory=dict)


REFUSED = [
    Refused("not_an_image", lambda: [image_field(inputs.not_an_image(), "doc.pdf")],
            400, "image", ("not an image", "PNG, JPEG")),
    Refused("truncated_png", lambda: [image_field(inputs.truncated_png())],
            400, "image", ("damaged or incomplete", "upload it again")),
    Refused("decompression_bomb_30000x30000", lambda: [image_field(inputs.bomb_png())],
            400, "image", ("30000×30000", "900 MP", "limit is 200 MP")),
    Refused("empty_prompt", lambda: [image_field(PICTURE)],
            400, "prompt", ("'prompt' is required",), {"prompt": "  "}),
    Refused("four_references", lambda: [image_field(PICTURE)] * 4,
            400, "image", ("At most 3",), {"model": "qwen-image-multiref"}),
    Refused("all_black_mask",
            lambda: [image_field(PICTURE), image_field(inputs.mask_png((96, 64), 0), key="mask")],
            400, "mask", ("marks nothing to edit",)),
    Refused("outpaint_padding_zero", lambda: [image_field(PICTURE)],
            400, "pad_left", ("at least one of pad_left",),
            {"model": "qwen-image-outpaint", **{f"pad_{s}": "0" for s in
                                                ("left", "top", "right", "bottom")}}),
    Refused("outpaint_padding_huge", lambda: [image_field(PICTURE)],
            400, "pad_right", ("between 0 and 1024", "5000"),
            {"model": "qwen-image-outpaint", "pad_right": "5000"}),
    Refused("oversized_upload", lambda: [image_field(inputs.oversized_png(2 * 1024 * 1024))],
            413, "image", ("the limit is 2 MB",)),
]


@pytest.mark.parametrize("row", REFUSED, ids=lambda r: r.case)
def test_edits_refuses(studio: MatrixStudio, row: Refused) -> None:
    before = studio.fake.counters["prompts_posted"]
    response = studio.edit(row.files(), **row.data)
    assert response.status_code == row.status, response.text
    error = response.json()["error"]
    assert error["param"] == row.param, error
    for needle in row.needles:
        assert needle in error["message"], error["message"]
    assert_actionable(error["message"], hide=comfy_addresses(studio.fake.url))
    assert studio.fake.counters["prompts_posted"] == before     # refused before ComfyUI


def test_generations_refuses_an_empty_prompt(studio: MatrixStudio) -> None:
    response = studio.generate(prompt="")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("prompt", "missing_prompt")
    assert_actionable(error["message"])


def test_bomb_is_refused_before_decoding(studio: MatrixStudio) -> None:
    """30000×30000 pixels inflate to ~900 MB; the header check must refuse it untouched."""
    bomb = inputs.bomb_png()
    assert len(bomb) < 200_000
    uploads = studio.fake.counters["requests"].get("POST /upload/image", 0)
    before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    response = studio.edit([image_field(bomb)])
    growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_kb) / 1024
    assert response.status_code == 400
    assert growth_mb < RSS_GROWTH_LIMIT_MB, f"peak RSS grew {growth_mb:.0f} MB"
    assert studio.fake.counters["requests"].get("POST /upload/image", 0) == uploads


# --- inputs that must work, and what the studio must make of them --------------------------


def decode(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def only_upload(studio: MatrixStudio) -> Image.Image:
    (uploaded,) = loaded_images(studio.fake).values()
    return uploaded.convert("RGB")


def corner_and_centre(image: Image.Image) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return image.getpixel((2, image.height - 3)), image.getpixel((image.width // 2,
                                                                   image.height // 2))


@dataclass(frozen=True)
class Accepted:
    """A row that must work; `check(uploaded, result)` says what "correct" means."""

    case: str
    data: Callable[[], bytes]
    name: str
    check: Callable[[Image.Image, Image.Image], None]


def _first_frame(uploaded: Image.Image, result: Image.Image) -> None:
    assert inputs.near(corner_and_centre(uploaded)[1], inputs.RED)     # red, not green


def _cmyk(uploaded: Image.Image, result: Image.Image) -> None:
    assert inputs.near(corner_and_centre(uploaded)[1], (255, 0, 0), 40)


def _sixteen_bit(uploaded: Image.Image, result: Image.Image) -> None:
    assert inputs.near(corner_and_centre(uploaded)[1], (192, 192, 192), 2)


def _palette(uploaded: Image.Image, result: Image.Image) -> None:
    w, h = uploaded.size
    assert inputs.near(uploaded.getpixel((w // 4, h // 2)), inputs.RED, 8)
    assert inputs.near(uploaded.getpixel((3 * w // 4, h // 2)), inputs.BLUE, 8)


def _upright(uploaded: Image.Image, result: Image.Image) -> None:
    assert uploaded.height > uploaded.width, uploaded.size      # portrait, as people see it
    assert result.height > result.width, result.size
    # orientation 6 turns the picture 90° clockwise: the stored top stripe is the right edge
    right, left = (uploaded.getpixel((x, uploaded.height // 2)) for x in (uploaded.width - 2, 1))
    assert inputs.near(right, inputs.WHITE, 40) and inputs.near(left, inputs.BLUE, 40)


def _flattened(uploaded: Image.Image, result: Image.Image) -> None:
    corner, centre = corner_and_centre(uploaded)
    assert inputs.near(corner, inputs.WHITE, 2) and inputs.near(centre, inputs.BLUE, 8)
    assert result.mode == "RGB"


ACCEPTED = [
    Accepted("animated_gif_first_frame", inputs.animated_gif, "anim.gif", _first_frame),
    Accepted("cmyk_jpeg", inputs.cmyk_jpeg, "cmyk.jpg", _cmyk),
    Accepted("png_16_bit", inputs.png_16bit, "deep.png", _sixteen_bit),
    Accepted("palette_png", inputs.palette_png, "palette.png", _palette),
    Accepted("exif_rotated_jpeg", inputs.exif_rotated_jpeg, "phone.jpg", _upright),
    Accepted("rgba_flattened", inputs.rgba_png, "cutout.png", _flattened),
]


@pytest.mark.parametrize("row", ACCEPTED, ids=lambda r: r.case)
def test_edits_accepts(studio: MatrixStudio, row: Accepted) -> None:
    response = studio.edit([image_field(row.data(), row.name)])
    assert response.status_code == 200, response.text
    result = decode(response.json()["data"][0]["b64_json"])
    row.check(only_upload(studio), result)


def test_edits_says_the_first_frame_of_a_gif_was_used(studio: MatrixStudio) -> None:
    response = studio.edit([image_field(inputs.animated_gif(), "anim.gif")])
    assert response.status_code == 200
    assert any("first frame" in note for note in response.json()["data"][0]["notes"])


def test_all_white_mask_repaints_the_whole_image(studio: MatrixStudio) -> None:
    source = inputs.picture((96, 64))
    response = studio.edit([image_field(inputs.png(source)),
                            image_field(inputs.mask_png((96, 64), 255), key="mask")])
    assert response.status_code == 200, response.text
    result = decode(response.json()["data"][0]["b64_json"]).convert("RGB")
    assert result.size == source.size
    changed = np.any(np.asarray(result) != np.asarray(source), axis=2)
    assert changed.mean() > 0.9, f"only {changed.mean():.0%} of the pixels were repainted"

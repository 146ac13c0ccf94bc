"""Bad-input matrix, API surface: `/v1/images/edits` and `/v1/images/generations` with every
input of tests/matrix/inputs.py. Each row ends in a clear error (status, param, message) or
a correct result (checked on what ComfyUI was given and on what came back).

docs/robustness.md has the same rows as a table.
"""

from __future__ import annotations

import base64
import io
import json
import resource
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.matrix import inputs
from tests.matrix.conftest import MatrixStudio
from tests.matrix.surfaces import API_KEY, assert_actionable, comfy_addresses, loaded_images

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


# --- malformed values: each a 400 with the studio's sentence, never a 500 (issue 9 #6, #9) ---


@dataclass(frozen=True)
class Malformed:
    """A raw JSON body for /v1/images/generations that must be refused with a 400."""

    case: str
    body: bytes
    param: str | None
    needles: tuple[str, ...]
    code: str | None = None


def _json(**fields: Any) -> bytes:
    base = {"prompt": "a lighthouse", "size": "256x256", "steps": 2}
    base.update(fields)
    return json.dumps(base).encode()


MALFORMED = [
    Malformed("size_superscripts", _json(size="²x²"), "size", ("is not WIDTHxHEIGHT",)),
    Malformed("size_5000_digits", _json(size="9" * 5000 + "x1024"), "size",
              ("is not WIDTHxHEIGHT",)),
    Malformed("n_1e400", _json(n=None).replace(b'"n": null', b'"n": 1e400'), "n",
              ("'n' must be a whole number",)),
    Malformed("steps_1e400", _json(steps=None).replace(b'"steps": null', b'"steps": 1e400'),
              "steps", ("'steps' must be a whole number",)),
    Malformed("cfg_huge_integer", _json(cfg=None).replace(b'"cfg": null', b'"cfg": 1' + b"0" * 400),
              "cfg", ("'cfg' must be a number",)),
    Malformed("nested_100000_deep", b'{"prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
              None, ("nested too deeply",), "invalid_json"),
    Malformed("prompt_lone_surrogate", _json(prompt="x\ud83c"), "prompt",
              ("broken character",)),
    Malformed("negative_lone_surrogate", _json(negative_prompt="\udfff"), "negative_prompt",
              ("broken character",)),
    Malformed("seed_minus_one", _json(seed=-1), "seed", ("out of range", "random seed")),
    Malformed("seed_2_pow_64", _json(seed=2**64), "seed", ("out of range",)),
    Malformed("not_utf8", b'{"prompt": "\xff\xfe"}', None, ("not valid JSON",), "invalid_json"),
]


@pytest.mark.parametrize("row", MALFORMED, ids=lambda r: r.case)
def test_generations_refuses_malformed_values(studio: MatrixStudio, row: Malformed) -> None:
    before = studio.fake.counters["prompts_posted"]
    response = httpx.post(studio.url + "/v1/images/generations", content=row.body,
                          headers={**studio.headers(), "Content-Type": "application/json"},
                          timeout=60)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == row.param, error
    if row.code:
        assert error["code"] == row.code, error
    for needle in row.needles:
        assert needle in error["message"], error["message"]
    assert len(error["message"]) < 300          # a bad value is not echoed back in full
    assert_actionable(error["message"])
    assert studio.fake.counters["prompts_posted"] == before


def test_form_with_too_many_fields(studio: MatrixStudio) -> None:
    fields = {f"extra{i}": "x" for i in range(65)}
    response = studio.edit([image_field(PICTURE)], **fields)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "too_many_fields" and "limit is 64" in error["message"]
    assert "HTTPException" not in error["message"]
    assert_actionable(error["message"])


def test_form_with_six_images(studio: MatrixStudio) -> None:
    response = studio.edit([image_field(PICTURE)] * 6, model="qwen-image-multiref")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("image", "too_many_files")
    assert "at most 3 images" in error["message"]
    assert_actionable(error["message"])


def test_form_with_a_2_mb_text_field(studio: MatrixStudio) -> None:
    response = studio.edit([image_field(PICTURE)], prompt="x" * (2 * 1024 * 1024))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "field_too_large" and "over 1 MB" in error["message"]
    assert_actionable(error["message"])


def test_form_without_a_boundary(studio: MatrixStudio) -> None:
    response = httpx.post(studio.url + "/v1/images/edits", timeout=30,
                          headers={**studio.headers(), "Content-Type": "multipart/form-data"},
                          content=b"--zz\r\nnonsense")    # no boundary: not a form
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "multipart/form-data" in error["message"] and "(" not in error["message"]


def test_form_seed_out_of_range_is_refused_like_the_ui(studio: MatrixStudio) -> None:
    response = studio.edit([image_field(PICTURE)], seed="-1")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "seed" and "out of range" in error["message"]


def test_bearer_with_a_tab_is_a_valid_header(studio: MatrixStudio) -> None:
    response = httpx.get(studio.url + "/v1/models", timeout=30,
                         headers={"Authorization": f"Bearer\t{API_KEY}"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("GET", "/v1/images/generations", "POST"), ("GET", "/v1/images/edits", "POST"),
     ("GET", "/v1/chat/completions", "POST"), ("PUT", "/v1/images/generations", "POST"),
     ("POST", "/v1/models", "GET, HEAD"), ("POST", "/healthz", "GET, HEAD"),
     ("DELETE", "/metrics", "GET, HEAD")],
)
def test_a_method_a_route_does_not_take_is_405(
    studio: MatrixStudio, method: str, path: str, allow: str
) -> None:
    response = httpx.request(method, studio.url + path, headers=studio.headers(), timeout=30)
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == allow
    error = response.json()["error"]
    assert error["code"] == "method_not_allowed" and allow in error["message"]


def test_head_on_a_probe_route_is_answered(studio: MatrixStudio) -> None:
    assert httpx.head(studio.url + "/healthz", timeout=30).status_code in (200, 503)

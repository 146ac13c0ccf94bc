"""Memory bounded by what was sent (issue 9 item 2) and large photos used, not refused
(issue 10 item 8): headers instead of decodes, decoding straight to the working size, no
full-resolution pixels in a prepared job, full-size results capped with a note."""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import numpy as np
import pytest
from PIL import Image

from backend.modes import REGISTRY
from backend.modes.inpaint import InpaintRequest
from backend.modes.multiref import MultiRefRequest
from backend.modes.outpaint import OutpaintRequest, plan_canvas
from backend.modes.region_edit import RegionEditRequest
from backend.modes.remove_background import RemoveBackgroundRequest
from backend.operations.base import Prepared
from backend.operations.images import check_upload, decode_image, read_header
from backend.operations.masks import PackedMask, composite_into, grow
from backend.requests import InvalidRequest
from backend.settings import Settings

SETTINGS = Settings(max_sampling_pixels=256 * 256)


def encode(image: Image.Image, fmt: str = "PNG", **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def gradient(width: int, height: int) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)
    rgb = np.stack([np.add.outer(y * 0, x), np.add.outer(y, x * 0), np.full((height, width), 90)],
                   -1)
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


def images_in(value: object) -> list[Image.Image]:
    """Every PIL image reachable from a prepared job's state (dataclasses, tuples)."""
    if isinstance(value, Image.Image):
        return [value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [i for f in dataclasses.fields(value) for i in images_in(getattr(value, f.name))]
    if isinstance(value, tuple | list):
        return [i for item in value for i in images_in(item)]
    return []


BIG = (1600, 1200)   # 7.3× the 256² working budget


def big_png() -> bytes:
    return encode(gradient(*BIG))


def painted() -> bytes:
    mask = Image.new("L", BIG, 0)
    mask.paste(255, (600, 400, 900, 700))
    return encode(mask)


@pytest.mark.parametrize("request_", [
    InpaintRequest(big_png(), painted(), "a cat"),
    OutpaintRequest(big_png(), right=256, prompt="more"),
    RegionEditRequest(big_png(), "the block", "make it red"),
    RemoveBackgroundRequest(big_png()),
    MultiRefRequest((big_png(), big_png()), "mix them"),
], ids=lambda r: r.mode)
def test_a_prepared_job_holds_no_full_resolution_pixels(request_: Any) -> None:
    """Before: inpaint, outpaint, region edit and background removal kept the decoded input
    (and inpaint its full-size mask) in Prepared.state from prepare to the end of the job."""
    prepared: Prepared = REGISTRY.operation_for(request_).prepare(request_, SETTINGS)
    budget = SETTINGS.max_sampling_pixels * 1.1
    held = images_in(prepared.state)
    assert all(image.width * image.height <= budget for image in held), [i.size for i in held]


def test_a_packed_mask_is_small_and_exact() -> None:
    mask = Image.new("L", (4000, 3000), 0)
    mask.paste(255, (1000, 1000, 1400, 1300))
    mask = grow(mask, 9)
    packed = PackedMask.of(mask)
    assert len(packed.bits) <= 418 * 318 // 8 + 1           # the box, one bit a pixel
    assert np.array_equal(np.asarray(packed.image()), np.asarray(mask))
    assert PackedMask.of(Image.new("L", (9, 9))).image().getbbox() is None


def test_grow_is_a_square_dilation_inside_the_image() -> None:
    mask = Image.new("L", (40, 30), 0)
    mask.putpixel((1, 1), 255)
    mask.putpixel((30, 20), 255)
    grown = np.asarray(grow(mask, 3)) > 0
    expected = np.zeros((30, 40), bool)
    expected[0:5, 0:5] = True
    expected[17:24, 27:34] = True
    assert np.array_equal(grown, expected)


def test_composite_into_reuses_the_original_and_keeps_the_outside() -> None:
    original = gradient(300, 200)
    before = np.asarray(original).copy()
    mask = Image.new("L", original.size, 0)
    mask.paste(255, (50, 40, 150, 120))
    out = composite_into(original, Image.new("RGB", (150, 100), (255, 0, 0)), mask)
    assert out is original
    inside = np.asarray(mask) > 0
    assert np.array_equal(np.asarray(out)[~inside], before[~inside])
    assert (np.asarray(out)[inside] == (255, 0, 0)).all()


def test_a_jpeg_decodes_straight_to_near_the_working_size() -> None:
    data = encode(gradient(4000, 3000), "JPEG", quality=90)
    image = decode_image(data, max_pixels=10**9, fit=(400, 300))
    assert (500, 375) <= image.size <= (1000, 750)     # the 1/4 DCT scale, never below fit
    assert decode_image(data, max_pixels=10**9).size == (4000, 3000)


def test_a_png_is_reduced_right_after_loading() -> None:
    image = decode_image(encode(gradient(4000, 3000)), max_pixels=10**9, fit=(400, 300))
    assert (800, 600) <= image.size <= (1400, 1050)    # a whole factor keeping 2× the fit


def test_an_exif_rotated_jpeg_has_its_displayed_size_in_the_header() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6      # stored landscape, shown portrait
    data = encode(gradient(1200, 600), "JPEG", exif=exif)
    header = read_header(data, max_pixels=10**9)
    assert header.size == (600, 1200) and header.format == "JPEG"
    shown = decode_image(data, max_pixels=10**9, fit=(150, 300))
    assert shown.size == (150, 300)        # the 1/4 DCT scale, then turned upright


def test_check_upload_words_every_refusal() -> None:
    settings = Settings(max_upload_bytes=1_000_000)
    header = check_upload(encode(gradient(640, 480)), settings)
    assert header.describe() == "PNG, 640×480 (0.3 MP)"
    with pytest.raises(InvalidRequest, match="not an image the studio can read"):
        check_upload(b"PK\x03\x04 a zip renamed .png", settings)
    with pytest.raises(InvalidRequest, match=r"The file is 1\.2 MB; the limit is 977 KB"):
        check_upload(b"\x89PNG" + bytes(1_250_000), settings)
    truncated = encode(Image.effect_noise((200, 200), 80))
    with pytest.raises(InvalidRequest, match="damaged or incomplete"):
        check_upload(truncated[: len(truncated) // 2], settings)


def test_a_phone_sized_photo_is_used_and_the_result_capped() -> None:
    """Before: anything over 40 MP was refused ("the limit is 40 MP") at run time."""
    settings = dataclasses.replace(SETTINGS, max_result_pixels=1_000_000)
    request = InpaintRequest(big_png(), painted(), "a cat")
    prepared = REGISTRY.operation_for(request).prepare(request, settings)
    assert any("results are at most 1.0 MP" in note for note in prepared.notes)
    state = prepared.state
    assert state.source.full_size == (1154, 866)          # type: ignore[attr-defined]
    assert state.mask.size == (1154, 866)                 # type: ignore[attr-defined]
    result = REGISTRY.operation_for(request).assemble(
        prepared, {"output": [Image.new("RGB", prepared.work_size or (1, 1), "red")]})
    assert result.images[0].size == (1154, 866)


def test_outpaint_plans_its_canvas_from_the_header_alone() -> None:
    """The preview and the result agree: plan_canvas is what prepare uses."""
    settings = dataclasses.replace(SETTINGS, max_result_pixels=2_000_000)
    request = OutpaintRequest(big_png(), left=100, right=300, prompt="more")
    plan = plan_canvas(BIG, request.pads, settings)
    prepared = REGISTRY.operation_for(request).prepare(request, settings)
    out = REGISTRY.operation_for(request).assemble(
        prepared, {"output": [Image.new("RGB", prepared.work_size or (1, 1), "red")]})
    assert out.images[0].size == plan.size
    assert plan.size[0] * plan.size[1] <= 2_000_000 * 1.02
    assert any("results are at most 2.0 MP" in note for note in plan.notes)

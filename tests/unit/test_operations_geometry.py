"""Working sizes, outpaint geometry, masks, and the full-resolution composites."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from backend.modes import REGISTRY
from backend.modes.inpaint import InpaintRequest
from backend.modes.outpaint import OutpaintRequest, OutpaintState
from backend.modes.region_edit import RegionEditRequest
from backend.modes.remove_background import RemoveBackgroundRequest
from backend.operations.masks import composite, feather, grow, to_mask
from backend.operations.sizing import outpaint_geometry, working_size
from backend.requests import InvalidRequest
from backend.settings import Settings

MP = 1024 * 1024
SETTINGS = Settings()


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(np.int16)


# --- sizing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1024, 1024), (1024, 1024)),      # already fine
        ((1000, 750), (1008, 752)),        # within budget: only grid rounding
        ((4000, 3000), (1184, 880)),       # scaled down, aspect kept
        ((3000, 4000), (880, 1184)),
        ((256, 256), (512, 512)),          # tiny inputs scaled up to a quarter of the budget
    ],
)
def test_working_size(size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert working_size(*size, max_pixels=MP) == expected


def test_working_size_never_exceeds_budget_and_is_on_the_grid() -> None:
    for w, h in [(1023, 1025), (1920, 1080), (1111, 999), (4096, 17), (3333, 2222)]:
        gw, gh = working_size(w, h, max_pixels=MP)
        assert gw % 16 == 0 and gh % 16 == 0
        assert gw * gh <= MP
        assert abs(gw / gh - w / h) / (w / h) < 0.05 or min(gw, gh) == 16


def test_small_inputs_are_not_upscaled_when_asked() -> None:
    assert working_size(256, 256, max_pixels=MP, upscale_small=False) == (256, 256)


# --- outpaint geometry ---------------------------------------------------------------------


def test_outpaint_geometry_without_scaling_keeps_requested_pads() -> None:
    g = outpaint_geometry(512, 512, (0, 0, 256, 0), max_pixels=MP)
    assert g.image_work == (512, 512)
    assert g.pads_work == (0, 0, 256, 0) and g.pads_full == (0, 0, 256, 0)
    assert not g.adjusted
    assert g.canvas_full == (768, 512)


def test_outpaint_geometry_aligns_the_canvas_to_16() -> None:
    g = outpaint_geometry(512, 512, (10, 0, 0, 5), max_pixels=MP)
    w, h = g.canvas_work
    assert w % 16 == 0 and h % 16 == 0
    assert g.pads_work[0] >= 10 and g.pads_work[3] >= 5
    assert g.pads_work[1] == 0 and g.pads_work[2] == 0  # no pad nobody asked for
    assert g.adjusted


def test_outpaint_geometry_scales_the_whole_canvas_to_the_budget() -> None:
    g = outpaint_geometry(3000, 2000, (500, 0, 500, 0), max_pixels=MP)
    w, h = g.canvas_work
    assert w % 16 == 0 and h % 16 == 0
    assert w * h <= MP * 1.05
    # pads mapped back are close to the request
    assert abs(g.pads_full[0] - 500) < 20 and abs(g.pads_full[2] - 500) < 20
    assert g.canvas_full[1] == 2000


# --- masks ----------------------------------------------------------------------------------


def test_grow_dilates_by_exactly_n_pixels() -> None:
    mask = Image.new("L", (50, 50), 0)
    mask.putpixel((25, 25), 255)
    grown = np.asarray(grow(mask, 4)) > 0
    ys, xs = np.nonzero(grown)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (21, 29, 21, 29)
    assert grown.sum() == 81


def test_feather_does_not_reach_beyond_its_radius() -> None:
    mask = Image.new("L", (60, 60), 0)
    mask.paste(255, (20, 20, 40, 40))
    soft = np.asarray(feather(mask, 5))
    assert soft[30, 30] == 255
    assert soft[30, 14] == 0 and soft[30, 15] > 0  # 5 px outside the edge at x=20
    assert 0 < soft[30, 20] < 255


def test_transparent_layer_counts_as_black() -> None:
    layer = Image.new("RGBA", (10, 10), (255, 255, 255, 0))
    layer.putpixel((3, 3), (255, 255, 255, 255))
    mask = to_mask(layer)
    assert mask.getpixel((3, 3)) == 255 and mask.getpixel((0, 0)) == 0


def test_composite_keeps_outside_pixels_bit_identical() -> None:
    original = noise(300, 200, 1)
    generated = noise(160, 112, 2)  # working size, scaled up inside
    mask = Image.new("L", original.size, 0)
    mask.paste(255, (50, 40, 150, 120))
    mask = feather(mask, 6)
    out = composite(original, generated, mask)
    outside = np.asarray(mask) == 0
    assert out.size == original.size
    assert np.array_equal(pixels(out)[outside], pixels(original)[outside])
    assert not np.array_equal(pixels(out)[~outside], pixels(original)[~outside])


# --- operations end to end without ComfyUI ------------------------------------------------


def test_inpaint_prepare_and_assemble_keep_unpainted_pixels() -> None:
    original = noise(640, 480, 3)
    painted = Image.new("L", (320, 240), 0)  # any size: scaled to the image
    painted.paste(255, (100, 100, 150, 140))
    request = InpaintRequest(original, painted, "a hat", grow=4, feather=3)
    op = REGISTRY.operation_for(request)
    prepared = op.prepare(request, SETTINGS)
    work = prepared.work_size
    assert work is not None and work[0] % 16 == 0
    model_output = noise(*work, seed=4)
    result = op.assemble(prepared, {"output": [model_output]})
    images, extras = result.images, result.extras
    out = images[0]
    assert out.size == original.size
    used = np.asarray(extras["mask"])
    outside = used == 0
    assert np.array_equal(pixels(out)[outside], pixels(original)[outside])
    # the painted area (x 200..300, y 200..280 at full size) changed
    assert not np.array_equal(pixels(out)[220, 250], pixels(original)[220, 250])
    # nothing farther than grow + feather from the painted area changed
    assert np.array_equal(pixels(out)[:190], pixels(original)[:190])


def test_region_edit_assemble_uses_the_mask_the_model_used() -> None:
    original = noise(800, 600, 5)
    request = RegionEditRequest(original, "the car", "make it red", feather=4)
    op = REGISTRY.operation_for(request)
    prepared = op.prepare(request, SETTINGS)
    work = prepared.work_size
    assert work is not None
    mask_out = Image.new("RGB", work, 0)
    mask_out.paste((255, 255, 255), (10, 10, 60, 60))
    result = op.assemble(prepared, {"output": [noise(*work, seed=6)], "mask_output": [mask_out]})
    images, extras = result.images, result.extras
    used = np.asarray(extras["mask"])
    assert extras["mask"].size == original.size
    outside = used == 0
    assert outside.any() and (~outside).any()
    assert np.array_equal(pixels(images[0])[outside], pixels(original)[outside])


def test_region_edit_precheck_refuses_an_empty_mask() -> None:
    request = RegionEditRequest(noise(64, 64), "the red car", "x")
    op = REGISTRY.operation_for(request)
    prepared = op.prepare(request, SETTINGS)
    with pytest.raises(InvalidRequest, match="Nothing matched 'the red car' — try other words"):
        op.check_precheck(prepared, [Image.new("RGB", (64, 64), 0)])


def test_outpaint_assemble_pastes_the_input_unchanged() -> None:
    original = noise(500, 300, 7)
    request = OutpaintRequest(original, left=40, right=100, top=0, bottom=30, prompt="sea")
    op = REGISTRY.operation_for(request)
    prepared = op.prepare(request, SETTINGS)
    geometry = prepared.state_as(OutpaintState).geometry
    assert prepared.values["pad"]["left"] == geometry.pads_work[0]
    result = op.assemble(prepared, {"output": [noise(*geometry.canvas_work, seed=8)]})
    images, _ = result.images, result.extras
    out = images[0]
    assert out.size == geometry.canvas_full
    left, top = geometry.pads_full[:2]
    inner = out.crop((left, top, left + 500, top + 300))
    assert np.array_equal(pixels(inner), pixels(original))
    if geometry.adjusted:
        assert any("16-pixel grid" in n for n in prepared.notes)


def test_outpaint_feathering_blends_only_the_extended_edges() -> None:
    original = noise(256, 256, 9)
    request = OutpaintRequest(original, right=64, feathering=8)
    op = REGISTRY.operation_for(request)
    prepared = op.prepare(request, SETTINGS)
    work = prepared.state_as(OutpaintState).geometry.canvas_work
    result = op.assemble(prepared, {"output": [noise(*work)]})
    images, _ = result.images, result.extras
    inner = pixels(images[0].crop((0, 0, 256, 256)))
    assert np.array_equal(inner[:, :240], pixels(original)[:, :240])
    assert not np.array_equal(inner[:, 250:], pixels(original)[:, 250:])


def test_remove_background_is_full_size_rgba_with_the_models_alpha() -> None:
    original = noise(2000, 1000, 10)
    request = RemoveBackgroundRequest(original)
    op = REGISTRY.operation_for(request)
    prepared = op.prepare(request, SETTINGS)
    work = prepared.work_size
    assert work is not None and work[0] * work[1] <= SETTINGS.max_sampling_pixels
    cutout = Image.new("RGBA", work, (0, 0, 0, 0))
    cutout.paste((1, 2, 3, 255), (0, 0, work[0] // 2, work[1]))
    result = op.assemble(prepared, {"output": [cutout]})
    images, _ = result.images, result.extras
    out = images[0]
    assert out.mode == "RGBA" and out.size == original.size
    assert out.getpixel((100, 500))[3] == 255 and out.getpixel((1900, 500))[3] == 0
    assert out.getpixel((100, 500))[:3] == original.getpixel((100, 500))  # the input's own pixels


def test_outpaint_work_canvas_never_exceeds_the_budget() -> None:
    """Grid rounding of a thin input with wide pads overshot the budget by up to a third;
    the budget bounds VRAM, so the canvas is shrunk until it fits (within 2%)."""
    rng = random.Random(7)
    for _ in range(3000):
        width, height = rng.randint(16, 4000), rng.randint(16, 4000)
        pads = tuple(rng.choice((0, rng.randint(1, 1024))) for _ in range(4))
        if not any(pads):
            continue
        g = outpaint_geometry(width, height, pads, max_pixels=MP)
        cw, ch = g.canvas_work
        assert cw * ch <= MP * 1.02, (width, height, pads, g)
        assert cw % 16 == 0 and ch % 16 == 0

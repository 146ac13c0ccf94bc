"""Request validation: each bad field gives a message a person can act on, naming the field."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from backend.limits import MAX_SEED
from backend.modes import REGISTRY
from backend.modes.edit import EditRequest
from backend.modes.generate import GenerateRequest
from backend.modes.inpaint import InpaintRequest
from backend.modes.multiref import MultiRefRequest
from backend.modes.outpaint import OutpaintRequest
from backend.modes.region_edit import RegionEditRequest
from backend.modes.remove_background import RemoveBackgroundRequest
from backend.requests import InvalidRequest
from backend.settings import Settings

SETTINGS = Settings()
IMAGE = Image.new("RGB", (64, 48), (10, 20, 30))


def invalid(request: object, settings: Settings = SETTINGS) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        op = REGISTRY.operation_for(request)  # type: ignore[arg-type]
        op.validate(request, settings)
        op.prepare(request, settings)
    return info.value


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_width_not_multiple_of_16_suggests_neighbours() -> None:
    err = invalid(GenerateRequest("a cat", width=1000))
    assert err.field == "width"
    assert err.message == "Width 1000 is not a multiple of 16 — try 992 or 1008."


def test_height_out_of_range() -> None:
    err = invalid(GenerateRequest("a cat", height=4096))
    assert err.field == "height" and "256 to 2048" in err.message


def test_pixel_budget_suggests_a_size_of_the_same_shape() -> None:
    err = invalid(GenerateRequest("a cat", width=2048, height=2048))
    assert err.field == "width"
    assert "limit is" in err.message and "try 1664×1664" in err.message


def test_empty_prompt() -> None:
    err = invalid(GenerateRequest("   "))
    assert err.field == "prompt" and "Write a prompt" in err.message


@pytest.mark.parametrize(
    ("kwargs", "field", "text"),
    [
        ({"steps": 0}, "steps", "between 1 and 100"),
        ({"steps": 101}, "steps", "between 1 and 100"),
        ({"steps": 2.5}, "steps", "whole number"),
        ({"cfg": -1.0}, "cfg", "CFG must be between 0 and 20"),
        ({"cfg": 21}, "cfg", "CFG must be between 0 and 20"),
        ({"cfg": float("nan")}, "cfg", "number"),
        ({"seed": -1}, "seed", "out of range"),
        ({"seed": MAX_SEED + 1}, "seed", "out of range"),
        ({"seed": True}, "seed", "whole number"),
        ({"variant": "../etc"}, "variant", "variant name"),
    ],
)
def test_common_fields(kwargs: dict, field: str, text: str) -> None:
    err = invalid(GenerateRequest("a cat", **kwargs))
    assert err.field == field and text in err.message


def test_largest_js_safe_seed_is_accepted() -> None:
    prepared = REGISTRY.operation_for(GenerateRequest("x")).prepare(
        GenerateRequest("x", seed=MAX_SEED), SETTINGS
    )
    assert prepared.seed == MAX_SEED
    assert prepared.values["sampler"]["seed"] == MAX_SEED


def test_seed_is_random_when_absent_and_reported() -> None:
    op = REGISTRY.operation_for(GenerateRequest("x"))
    seeds = {op.prepare(GenerateRequest("x"), SETTINGS).seed for _ in range(5)}
    assert len(seeds) > 1 and all(0 <= s <= MAX_SEED for s in seeds)


def test_generate_defaults_and_turbo_variant_come_from_settings() -> None:
    op = REGISTRY.operation_for(GenerateRequest("x"))
    normal = op.prepare(GenerateRequest("x", seed=1), SETTINGS)
    turbo = op.prepare(GenerateRequest("x", seed=1, variant="turbo"), SETTINGS)
    s, m = SETTINGS.sampling, SETTINGS.models
    assert normal.values["unet"] == {"name": m.generate_unet}
    assert (normal.values["sampler"]["steps"], normal.values["sampler"]["cfg"]) == (
        s.generate_steps, s.generate_cfg)
    assert turbo.values["unet"] == {"name": m.generate_turbo_unet}
    assert (turbo.values["sampler"]["steps"], turbo.values["sampler"]["cfg"]) == (
        s.turbo_steps, s.turbo_cfg)
    assert normal.values["latent"] == {"width": 1024, "height": 1024, "batch": 1}
    assert normal.values["clip"] == {"name": m.text_encoder}
    assert normal.values["vae"] == {"name": m.vae}


def test_explicit_steps_and_cfg_win_over_defaults() -> None:
    prepared = REGISTRY.operation_for(EditRequest(IMAGE, "x")).prepare(
        EditRequest(IMAGE, "x", steps=7, cfg=0.0), SETTINGS
    )
    assert prepared.values["sampler"]["steps"] == 7 and prepared.values["sampler"]["cfg"] == 0.0
    assert prepared.values["unet"] == {"name": SETTINGS.models.edit_unet}


def test_edit_needs_an_image() -> None:
    err = invalid(EditRequest(b"", "x"))
    assert err.field == "image" and "Add an image" in err.message


def test_multiref_counts() -> None:
    assert invalid(MultiRefRequest((), "x")).field == "images"
    err = invalid(MultiRefRequest((IMAGE,) * 4, "x"))
    assert "1 to 3 reference images (got 4)" in err.message


def test_multiref_names_the_bad_image() -> None:
    err = invalid(MultiRefRequest((IMAGE, b"not an image"), "x"))
    assert err.field == "image2"


def test_region_needs_words() -> None:
    err = invalid(RegionEditRequest(IMAGE, "  ", "make it red"))
    assert err.field == "region" and "Name the region" in err.message


def test_grow_range() -> None:
    err = invalid(RegionEditRequest(IMAGE, "car", "x", grow=-1))
    assert err.field == "grow" and "between 0 and" in err.message


def test_inpaint_all_black_mask_is_an_error() -> None:
    mask = Image.new("L", (64, 48), 0)
    err = invalid(InpaintRequest(IMAGE, png(mask), "x"))
    assert err.field == "mask"
    assert err.message == "The mask is empty: paint the area to change."


def test_inpaint_all_white_mask_is_allowed() -> None:
    request = InpaintRequest(IMAGE, Image.new("L", (10, 10), 255), "x")
    prepared = REGISTRY.operation_for(request).prepare(request, SETTINGS)
    assert set(prepared.uploads) == {"image", "mask"}


def test_outpaint_needs_one_side() -> None:
    err = invalid(OutpaintRequest(IMAGE))
    assert err.field == "left" and "at least one side" in err.message


def test_outpaint_pad_limit() -> None:
    err = invalid(OutpaintRequest(IMAGE, right=SETTINGS.max_outpaint_pad + 1))
    assert err.field == "right" and f"between 0 and {SETTINGS.max_outpaint_pad}" in err.message


def test_outpaint_result_size_is_bounded_by_scaling_not_refused() -> None:
    """A canvas over max_result_pixels is made at a smaller scale (it used to be refused:
    with phone-sized inputs every extension would have been)."""
    settings = Settings(max_result_pixels=200_000)
    request = OutpaintRequest(png(Image.new("RGB", (400, 400))), right=400, bottom=400)
    prepared = REGISTRY.operation_for(request).prepare(request, settings)
    geometry = prepared.state.geometry  # type: ignore[attr-defined]
    width, height = geometry.canvas_full
    assert width * height <= 200_000 * 1.02 and abs(width - height) <= 16
    assert any("The result would be 800×800" in note and "at most 0.2 MP" in note
               for note in prepared.notes)


def test_outpaint_prompt_may_be_empty() -> None:
    request = OutpaintRequest(IMAGE, right=32)
    REGISTRY.operation_for(request).validate(request, SETTINGS)


def test_remove_background_binds_the_birefnet_model() -> None:
    request = RemoveBackgroundRequest(png(IMAGE))
    prepared = REGISTRY.operation_for(request).prepare(request, SETTINGS)
    assert prepared.values == {"rmbg": {"model": SETTINGS.models.birefnet}}
    assert prepared.diffusion_model is None


# --- text fields the studio cannot pass on as typed (issue 9 item 6) ----------------------

BROKEN = "x\ud83c"      # half of an emoji: cannot be encoded (JSON to ComfyUI, PNG text, SQLite)


@pytest.mark.parametrize(("request_", "field", "what"), [
    (GenerateRequest(BROKEN), "prompt", "The prompt"),
    (GenerateRequest("ok", negative_prompt=BROKEN), "negative_prompt", "The negative prompt"),
    (EditRequest(IMAGE, BROKEN), "prompt", "The prompt"),
    (OutpaintRequest(IMAGE, right=32, prompt=BROKEN), "prompt", "The prompt"),
    (RegionEditRequest(IMAGE, BROKEN, "make it red"), "region", "The region"),
], ids=["prompt", "negative", "edit", "outpaint", "region"])
def test_a_lone_surrogate_is_refused_with_a_sentence(request_: object, field: str,
                                                     what: str) -> None:
    """Before: API 500, UI "internal error (UnicodeEncodeError)", counted as cancelled."""
    err = invalid(request_)
    assert err.field == field
    assert err.message == f"{what} contains a broken character (an unpaired surrogate); remove it."


def test_control_characters_are_refused_but_tabs_and_line_breaks_are_text() -> None:
    err = invalid(GenerateRequest("a bell\x07 rings"))
    assert err.field == "prompt" and "control character (U+0007)" in err.message
    assert "U+0085" in invalid(GenerateRequest("next\x85line")).message
    request = GenerateRequest("line one\nline two\r\n\ttabbed, café, 🍌")
    REGISTRY.operation_for(request).validate(request, SETTINGS)

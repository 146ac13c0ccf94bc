"""The API's parsing without a server: model ids, sizes, OpenAI masks, the error table."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from backend.api.edits import EditForm, build_edit_requests, models_of, openai_mask
from backend.api.errors import FAILURE_STATUS, ApiError, error_response
from backend.api.schemas import model_ids, parse_n, parse_size, pick_model
from backend.events import FAILURE_KINDS
from backend.modes import REGISTRY, ApiRoute
from backend.operations.masks import to_mask
from backend.settings import Settings

GENERATE_MODELS = models_of(REGISTRY.on_route(ApiRoute.GENERATIONS))
EDIT_MODELS = models_of(REGISTRY.on_route(ApiRoute.EDITS))


def variants(mode: str) -> list[str]:
    return {"generate": ["default", "turbo"], "inpaint": ["default", "conditioning"]}.get(
        mode, ["default"]
    )


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_model_ids_include_template_variants():
    assert model_ids(GENERATE_MODELS, variants) == ["qwen-image", "qwen-image-turbo"]
    assert "qwen-image-inpaint-conditioning" in model_ids(EDIT_MODELS, variants)


@pytest.mark.parametrize(
    ("raw", "mode", "variant"),
    [
        (None, "generate", None),
        ("qwen-image", "generate", None),
        ("qwen-image-turbo", "generate", "turbo"),
        ("protolabs/qwen-image", "generate", None),      # a gateway's vendor prefix
        ("Qwen-Image-Turbo", "generate", "turbo"),
    ],
)
def test_generation_models(raw, mode, variant):
    choice = pick_model(raw, GENERATE_MODELS, variants)
    assert (choice.mode, choice.variant) == (mode, variant)


def test_edit_model_variant_is_not_read_as_a_generate_variant():
    choice = pick_model("qwen-image-inpaint-conditioning", EDIT_MODELS, variants)
    assert (choice.mode, choice.variant) == ("inpaint", "conditioning")
    with pytest.raises(ApiError) as err:
        pick_model("qwen-image-edit", GENERATE_MODELS, variants)
    assert err.value.status == 400 and err.value.param == "model"
    assert "qwen-image-turbo" in err.value.message     # the message lists what exists


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, (1024, 1024)), ("auto", (1024, 1024)), ("1328x1328", (1328, 1328)),
     ("1664x928", (1664, 928)), ("512×768", (512, 768))],
)
def test_sizes(raw, expected):
    assert parse_size(raw, 1664 * 1664) == expected


@pytest.mark.parametrize(
    ("raw", "needle"),
    [("1000x1000", "multiple of 16"), ("big", "WIDTHxHEIGHT"), ("4096x4096", "budget"),
     ("0x512", "multiple of 16")],
)
def test_bad_sizes(raw, needle):
    with pytest.raises(ApiError) as err:
        parse_size(raw, 1664 * 1664)
    assert err.value.status == 400 and err.value.param == "size"
    assert needle in err.value.message


@pytest.mark.parametrize("raw", [0, 5, "two", 1.5, True])
def test_bad_n(raw):
    with pytest.raises(ApiError) as err:
        parse_n(raw)
    assert err.value.param == "n"


def test_openai_mask_transparent_means_edit():
    settings = Settings()
    mask = Image.new("RGBA", (64, 32), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (10, 5, 20, 15))            # the hole to repaint
    converted = to_mask(Image.open(io.BytesIO(openai_mask(png(mask), (64, 32), settings))))
    assert converted.mode == "L" and converted.size == (64, 32)
    assert converted.getpixel((15, 10)) == 255 and converted.getpixel((40, 20)) == 0
    assert converted.getbbox() == (10, 5, 20, 15)


def test_openai_mask_without_alpha_is_white_means_edit():
    mask = Image.new("L", (64, 32), 0)
    mask.paste(255, (0, 0, 8, 8))
    converted = to_mask(Image.open(io.BytesIO(openai_mask(png(mask), (64, 32), Settings()))))
    assert converted.getbbox() == (0, 0, 8, 8)


@pytest.mark.parametrize(
    ("mask", "needle"),
    [(Image.new("RGBA", (10, 10), (0, 0, 0, 0)), "same size"),
     (Image.new("RGBA", (64, 32), (0, 0, 0, 255)), "nothing to edit")],
)
def test_bad_masks(mask, needle):
    with pytest.raises(ApiError) as err:
        openai_mask(png(mask), (64, 32), Settings())
    assert err.value.param == "mask" and needle in err.value.message


def test_edit_model_picks_the_mode_from_what_was_sent():
    settings = Settings()
    picture = png(Image.new("RGB", (64, 64), "red"))
    hole = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    hole.paste((0, 0, 0, 0), (0, 0, 16, 16))

    def build(images, mask=None, **fields):
        form = EditForm({"prompt": "x", **fields}, tuple(images), mask)
        return build_edit_requests(form, settings, REGISTRY, variants)

    assert build([picture])[0].mode == "edit"
    assert build([picture, picture])[0].mode == "multiref"
    choice, requests = build([picture], png(hole), n="2", seed="7")
    assert choice.mode == "inpaint" and [r.seed for r in requests] == [7, 8]
    assert to_mask(Image.open(io.BytesIO(requests[0].mask))).getbbox() == (0, 0, 16, 16)
    choice, requests = build([picture], model="qwen-image-outpaint", pad_right="64")
    assert choice.mode == "outpaint" and requests[0].right == 64
    choice, requests = build([picture], model="qwen-image-remove-background", prompt="")
    assert choice.mode == "remove_background"
    with pytest.raises(ApiError) as err:
        build([picture], model="qwen-image-region-edit")
    assert err.value.param == "region"
    with pytest.raises(ApiError) as err:
        build([picture, picture], png(hole))
    assert err.value.param == "image"
    with pytest.raises(ApiError) as err:
        build([picture, picture, picture, picture], model="qwen-image-multiref")
    assert err.value.param == "image"


def test_every_failure_kind_has_a_status():
    assert set(FAILURE_STATUS) == set(FAILURE_KINDS)
    for kind in FAILURE_KINDS:
        error = ApiError.from_failure(kind, "msg")
        assert 400 <= error.status < 600
    assert ApiError.from_failure("out_of_memory", "m").status == 507
    assert ApiError.from_failure("timeout", "m").status == 504


def test_error_shape_is_openais():
    response = error_response(400, "Bad size.", param="size", code="invalid_size", retry=False)
    body = json.loads(response.body)
    assert body == {"error": {"message": "Bad size.", "type": "invalid_request_error",
                              "param": "size", "code": "invalid_size"}}
    assert response.headers["x-should-retry"] == "false"


def test_n_images_from_the_largest_seed_wrap_instead_of_failing():
    from backend.api.schemas import parse_common, seed_for
    from backend.limits import MAX_SEED

    common = parse_common({"n": 3, "seed": MAX_SEED})
    assert [seed_for(common, i) for i in range(3)] == [MAX_SEED, 0, 1]
    assert seed_for(parse_common({"n": 2}), 1) is None


def test_the_docs_error_table_agrees_with_the_code():
    """docs/api.md said a missing node class was 424 while the code answered 502 (issue 10
    #15): every failure kind's status and code must be a row of the page's table."""
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    rows = [line for line in page.splitlines() if line.startswith("| 4") or
            line.startswith("| 5")]
    for kind, outcome in FAILURE_STATUS.items():
        assert any(row.startswith(f"| {outcome.status} |") and f"`{outcome.code}`" in row
                   for row in rows), (kind, outcome)


def test_seeds_out_of_range_are_passed_on_to_be_refused_not_wrapped():
    from backend.api.schemas import Common, seed_for
    from backend.limits import MAX_SEED

    def common(seed: int | None) -> Common:
        return Common(n=2, seed=seed, negative_prompt="", steps=None, cfg=None)

    assert seed_for(common(-1), 0) == -1                 # refused later, like the UI
    assert seed_for(common(2**64), 1) == 2**64
    assert seed_for(common(MAX_SEED), 1) == 0            # n > 1 from a valid seed wraps
    assert seed_for(common(None), 1) is None

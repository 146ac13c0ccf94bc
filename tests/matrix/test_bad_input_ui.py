"""Bad-input matrix, UI surface: the tabs' run handlers called through gradio_client against
the running app — the upload + queue/join + SSE path a browser takes (see surfaces.py for why
the private handlers are reachable by fn_index). Each row ends in a clear message in the tab
(or Gradio's error modal) or in a correct result.

docs/robustness.md has the same rows as a table.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.matrix import inputs
from tests.matrix.conftest import MAX_UPLOAD_BYTES, MatrixStudio
from tests.matrix.surfaces import UISession, assert_actionable, comfy_addresses, loaded_images

pytestmark = pytest.mark.timeout(60)
RSS_GROWTH_LIMIT_MB = 100
PICTURE = inputs.png(inputs.picture())
SIZE = inputs.picture().size


def editor(ui: UISession, layer: Image.Image) -> dict[str, Any]:
    """An ImageEditor value: the picture plus one painted layer (alpha > 0 = painted)."""
    return {"background": ui.file(PICTURE, "picture.png"),
            "layers": [ui.file(inputs.png(layer), "layer.png")], "composite": None}


NOTHING_PAINTED = Image.new("RGBA", SIZE, (0, 0, 0, 0))
ALL_PAINTED = Image.new("RGBA", SIZE, (255, 80, 80, 255))


@dataclass(frozen=True)
class Refused:
    case: str
    mode: str
    values: dict[str, Any]
    needles: tuple[str, ...]
    editor_layer: Image.Image | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)


REFUSED = [
    Refused("empty_prompt", "edit", {"image": (PICTURE, "p.png"), "prompt": "   "},
            ("Write a prompt",)),
    Refused("nothing_painted_all_black_mask", "inpaint", {"prompt": "a vase"},
            ("Paint over the part of the picture",), NOTHING_PAINTED),
    Refused("outpaint_padding_zero", "outpaint", {"image": (PICTURE, "p.png")},
            ("Extend at least one side",)),
    # The sliders stop at the limit; a crafted request past it meets Gradio's own check.
    Refused("outpaint_padding_huge", "outpaint", {"image": (PICTURE, "p.png"), "right": 5000},
            ("greater than maximum value 1024",)),
    # 200 MP (STUDIO_MAX_INPUT_PIXELS) is the bomb limit: phone photos up to it are used.
    Refused("over_the_pixel_limit", "edit",
            {"image": (inputs.bomb_png(16_000, 13_000), "big.png"), "prompt": "x"},
            ("16000×13000 = 208 MP", "the limit is 200 MP")),
]


@pytest.mark.parametrize("row", REFUSED, ids=lambda r: r.case)
def test_tab_refuses(studio: MatrixStudio, ui: UISession, row: Refused) -> None:
    values = dict(row.values)
    if row.editor_layer is not None:
        values["editor"] = editor(ui, row.editor_layer)
    before = studio.fake.counters["prompts_posted"]
    shown = ui.run(row.mode, **values)
    for needle in row.needles:
        assert needle in shown.shown, shown
    assert_actionable(shown.shown, hide=comfy_addresses(studio.fake.url))
    assert shown.result_url is None
    assert studio.fake.counters["prompts_posted"] == before


@pytest.mark.parametrize(("case", "data"), [
    ("not_an_image", inputs.not_an_image()),
    ("truncated_png", inputs.truncated_png()),
    ("decompression_bomb_30000x30000", inputs.bomb_png()),
])
def test_unreadable_upload_gets_the_studios_sentence(
    studio: MatrixStudio, ui: UISession, case: str, data: bytes
) -> None:
    shown = ui.run("edit", image=(data, f"{case}.png"), prompt="make it blue")
    assert "/tmp" not in shown.shown and "component" not in shown.shown, shown.shown
    assert_actionable(shown.shown, hide=comfy_addresses(studio.fake.url))


def test_unreadable_upload_never_reaches_comfyui(studio: MatrixStudio, ui: UISession) -> None:
    """Whatever the wording, nothing unreadable is run (the xfail above is about the words)."""
    before = studio.fake.counters["prompts_posted"]
    for data in (inputs.not_an_image(), inputs.truncated_png()):
        shown = ui.run("edit", image=(data, "x.png"), prompt="make it blue")
        assert shown.error or shown.message
        assert shown.result_url is None
    assert studio.fake.counters["prompts_posted"] == before


def _peak_rss_growth_mb(action: Any) -> tuple[Any, float]:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcome = action()
    return outcome, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024


def test_bomb_30000x30000_is_refused_before_decoding(studio: MatrixStudio, ui: UISession) -> None:
    before = studio.fake.counters["prompts_posted"]
    shown, growth = _peak_rss_growth_mb(
        lambda: ui.run("edit", image=(inputs.bomb_png(), "bomb.png"), prompt="x"))
    # The studio's own refusal from the header (the UI hands decode_image the unopened file).
    assert "30000×30000 = 900 MP; the limit is 200 MP" in shown.shown, shown.shown
    assert growth < RSS_GROWTH_LIMIT_MB, f"peak RSS grew {growth:.0f} MB"
    assert studio.fake.counters["prompts_posted"] == before


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_bomb_just_over_the_studios_limit_is_refused_before_decoding(
    studio: MatrixStudio, ui: UISession
) -> None:
    # The studio's limit (200 MP) is above Pillow's own (179 MP): the studio reads the size
    # from the header itself, and refuses just past its own limit without decoding.
    shown, growth = _peak_rss_growth_mb(
        lambda: ui.run("edit", image=(inputs.bomb_png(14_200, 14_200), "bomb.png"), prompt="x"))
    assert "14200×14200 = 202 MP; the limit is 200 MP" in shown.shown   # the studio's refusal
    assert growth < RSS_GROWTH_LIMIT_MB, f"peak RSS grew {growth:.0f} MB"


def test_four_references_cannot_be_sent(ui: UISession) -> None:
    slots = [name for name in ui.inputs_of("multiref") if name.startswith("multiref_image")]
    assert slots == ["multiref_image1", "multiref_image2", "multiref_image3"]


def test_oversized_upload_is_refused_by_gradio(studio: MatrixStudio) -> None:
    big = inputs.oversized_png(MAX_UPLOAD_BYTES)
    response = httpx.post(studio.url + "/gradio_api/upload", timeout=30,
                          files={"files": ("big.png", big, "image/png")})
    assert response.status_code == 413
    assert response.text == f"File size exceeded maximum allowed size of {MAX_UPLOAD_BYTES} bytes."


# --- readable but odd: what ComfyUI got, and what the tab shows ---------------------------


def _upload(studio: MatrixStudio) -> Image.Image:
    (uploaded,) = loaded_images(studio.fake).values()
    return uploaded.convert("RGB")


def _centre(image: Image.Image) -> tuple[int, ...]:
    return image.getpixel((image.width // 2, image.height // 2))


def row(case: str, data: Any, name: str, uploaded_ok: Any, info: str = "",
        xfail: str | None = None) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    return pytest.param(case, data, name, uploaded_ok, info, id=case, marks=marks)


ACCEPTED = [
    row("animated_gif_first_frame", inputs.animated_gif, "anim.gif",
        lambda up: inputs.near(_centre(up), inputs.RED), "the first frame was used"),
    row("png_16_bit", inputs.png_16bit, "deep.png",
        lambda up: inputs.near(_centre(up), (192, 192, 192), 2)),
    row("palette_png", inputs.palette_png, "palette.png",
        lambda up: inputs.near(up.getpixel((up.width // 4, up.height // 2)), inputs.RED, 8)),
    row("exif_rotated_jpeg", inputs.exif_rotated_jpeg, "phone.jpg",
        lambda up: up.height > up.width, "from 60×120"),
    row("rgba_flattened", inputs.rgba_png, "cutout.png",
        lambda up: inputs.near(up.getpixel((1, 1)), inputs.WHITE, 2)
        and inputs.near(_centre(up), inputs.BLUE, 8)),
    row("cmyk_jpeg", inputs.cmyk_jpeg, "cmyk.jpg",
        lambda up: inputs.near(_centre(up), (255, 0, 0), 40)),
]


@pytest.mark.parametrize(("case", "data", "name", "uploaded_ok", "info"), ACCEPTED)
def test_tab_accepts(studio: MatrixStudio, ui: UISession, case: str, data: Any, name: str,
                     uploaded_ok: Any, info: str) -> None:
    shown = ui.run("edit", image=(data(), name), prompt="make it brighter", steps=2)
    assert shown.status == "Done.", shown
    assert uploaded_ok(_upload(studio)), case
    assert info in shown.info
    result = ui.fetch(shown.result_url)
    if case == "exif_rotated_jpeg":
        assert result.height > result.width, result.size         # upright, as people see it


def test_all_white_mask_repaints_the_whole_image(studio: MatrixStudio, ui: UISession) -> None:
    shown = ui.run("inpaint", editor=editor(ui, ALL_PAINTED), prompt="a vase", steps=2)
    assert shown.status == "Done.", shown
    result = ui.fetch(shown.result_url).convert("RGB")
    assert result.size == SIZE
    changed = np.any(np.asarray(result) != np.asarray(inputs.picture()), axis=2)
    assert changed.mean() > 0.9, f"only {changed.mean():.0%} of the pixels were repainted"

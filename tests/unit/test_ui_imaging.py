"""ui/imaging.py: masks from the editor's layers, outpaint pads and previews, presets."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ui import imaging


def editor(size=(20, 10), painted=()):
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    for xy in painted:
        layer.putpixel(xy, (255, 0, 0, 40))  # faint paint still counts
    return {"background": Image.new("RGBA", size, (9, 9, 9, 255)), "layers": [layer],
            "composite": None}


def test_mask_comes_from_layer_alpha_pixel_for_pixel():
    mask = imaging.editor_mask(editor(painted=[(3, 4), (19, 9)]))
    assert mask.mode == "L" and mask.size == (20, 10)
    arr = np.asarray(mask)
    assert arr[4, 3] == 255 and arr[9, 19] == 255
    assert int((arr > 0).sum()) == 2


def test_no_background_means_no_mask():
    assert imaging.editor_mask(None) is None
    assert imaging.editor_mask({"background": None, "layers": [], "composite": None}) is None


def test_invert_and_clear():
    value = editor(painted=[(0, 0)])
    inverted = imaging.invert_editor_mask(value)
    arr = np.asarray(imaging.editor_mask(inverted))
    assert arr[0, 0] == 0 and int((arr > 0).sum()) == 20 * 10 - 1
    cleared = imaging.clear_editor_mask(value)
    assert imaging.mask_coverage(imaging.editor_mask(cleared)) == 0.0


def test_pads_for_aspect_grow_only_in_multiples_of_16():
    pads = imaging.pads_for_aspect((1024, 1024), 16 / 9, max_pad=1024)
    assert pads.top == pads.bottom == 0
    assert pads.left % 16 == 0 and pads.right % 16 == 0
    w, h = pads.canvas_size((1024, 1024))
    assert abs(w / h - 16 / 9) < 0.02
    tall = imaging.pads_for_aspect((1600, 900), 1.0, max_pad=1024)
    assert tall.left == tall.right == 0 and tall.top + tall.bottom == 704
    assert imaging.pads_for_aspect((512, 512), 1.0, max_pad=1024) == imaging.Pads(0, 0, 0, 0)
    capped = imaging.pads_for_aspect((100, 2000), 16 / 9, max_pad=256)
    assert capped.left == capped.right == 256


def test_padded_preview_shows_checkerboard_in_the_new_area():
    src = Image.new("RGB", (64, 32), (255, 0, 0))
    preview = imaging.padded_preview(src, imaging.Pads(32, 0, 0, 16), max_side=1000)
    assert preview.size == (96, 48)
    assert preview.getpixel((50, 10)) == (255, 0, 0)
    assert preview.getpixel((2, 2)) in ((236, 236, 236), (204, 204, 204))


def test_size_presets_are_multiples_of_16():
    for w, h in imaging.SIZE_PRESETS.values():
        assert w % 16 == 0 and h % 16 == 0
    assert (1472, 1136) in imaging.SIZE_PRESETS.values()


def test_outpaint_preview_promises_the_result_size() -> None:
    """Issue 10 item 9: the preview said 1504×800 and the job made 1510×803; the size line
    now comes from plan_canvas, the arithmetic the job itself uses."""
    from backend.modes.outpaint import plan_canvas
    from backend.settings import Settings
    from ui.tabs.outpaint import canvas_text, preview_pads

    settings = Settings.from_env({})
    plan = plan_canvas((1024, 800), (240, 0, 240, 0), settings)
    assert plan.size == (1510, 800)
    assert canvas_text((1024, 800), plan) == "1024×800 → **1510×800**"
    shown = preview_pads(plan, 512)
    assert (shown.left, shown.right) == (122, 122)      # the plan's 243 px, at half size


def test_outpaint_preview_decodes_a_large_photo_small(tmp_path) -> None:
    """Issue 10 item 8: a large phone photo is used, not refused, and the preview never holds
    it whole (a JPEG decodes at 1/8 straight away)."""
    from PIL import Image

    from ui.tabs.outpaint import preview_source

    path = tmp_path / "big.jpg"
    Image.new("RGB", (3000, 2000), (90, 120, 200)).save(path, quality=70)
    small, size = preview_source(str(path), 200_000_000)
    assert size == (3000, 2000) and max(small.size) <= 512

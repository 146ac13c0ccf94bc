"""Issue 10 items 10-11 in the backend: Edit's output size and Multi-ref's main picture."""

from __future__ import annotations

import pytest
from PIL import Image

from backend.modes import REGISTRY
from backend.modes.edit import EditRequest
from backend.requests import InvalidRequest
from backend.settings import Settings

SETTINGS = Settings.from_env({})


def _edit(request: EditRequest) -> tuple[tuple[int, int], tuple[str, ...]]:
    """The result's size (the fake model answers at the working size) and the notes."""
    op = REGISTRY.get("edit").operation
    op.validate(request, SETTINGS)
    prepared = op.prepare(request, SETTINGS)
    assert prepared.work_size is not None
    made = Image.new("RGB", prepared.work_size, (9, 9, 9))
    (result,) = op.assemble(prepared, {"output": [made]}).images
    return result.size, prepared.notes


def test_edit_returns_the_inputs_size_by_default_and_says_it_resampled() -> None:
    """Issue 10 item 10: 1664×928 in, 1360×768 out; now the input's size unless asked."""
    picture = Image.new("RGB", (1600, 896), (200, 100, 50))
    size, notes = _edit(EditRequest(image=picture, prompt="make it blue", seed=1))
    assert size == (1600, 896)
    assert any("resampled to 1600×896, the input's size" in n for n in notes), notes
    size, notes = _edit(EditRequest(image=picture, prompt="x", seed=1, output_size="model"))
    assert size != (1600, 896) and size[0] * size[1] < 1600 * 896
    assert not any("resampled" in n for n in notes)


def test_edit_output_size_must_be_one_of_the_two() -> None:
    op = REGISTRY.get("edit").operation
    with pytest.raises(InvalidRequest, match="Output size") as info:
        op.validate(EditRequest(image=Image.new("RGB", (64, 64)), prompt="x",
                                output_size="huge"), SETTINGS)
    assert info.value.field == "output_size"


def test_multiref_main_reference_sets_the_canvas_and_comes_first() -> None:
    """Issue 10 item 11: the chosen main picture goes first (the template's canvas)."""
    from backend.modes.multiref import MultiRefRequest

    wide, tall = Image.new("RGB", (640, 320)), Image.new("RGB", (320, 640))
    op = REGISTRY.get("multiref").operation
    request = MultiRefRequest(images=(wide, tall), prompt="x", seed=1, main=2)
    op.validate(request, SETTINGS)
    prepared = op.prepare(request, SETTINGS)
    assert prepared.work_size is not None and prepared.work_size[1] > prepared.work_size[0]
    assert any("Reference 2 (the main one) set the canvas" in n for n in prepared.notes)
    with pytest.raises(InvalidRequest, match="main reference"):
        op.validate(MultiRefRequest(images=(wide,), prompt="x", main=2), SETTINGS)


def test_multiref_tab_never_silently_uses_reference_2_as_the_canvas(tmp_path) -> None:
    """Issue 10 item 11: Reference 1 empty used to make Reference 2 the canvas unsaid."""
    from backend.modes.multiref import MultiRefRequest
    from ui.tabspec import build_by_name

    path = tmp_path / "r.png"
    Image.new("RGB", (64, 48)).save(path)
    spec = REGISTRY.get("multiref")
    with pytest.raises(InvalidRequest, match="Reference 1, the main picture, is empty") as info:
        build_by_name(spec, {"image2": str(path), "prompt": "x", "main": "1"})
    assert "choose Reference 2" in info.value.message
    built = build_by_name(spec, {"image1": str(path), "image3": str(path), "prompt": "x",
                                 "main": "3"})
    assert isinstance(built.request, MultiRefRequest)
    assert built.request.main == 2 and len(built.request.images) == 2
    assert built.params["main"] == "2"


def test_a_cut_outs_alpha_becomes_the_inpaint_editors_mask(tmp_path) -> None:
    """Issue 14 item 5: "Use as mask" on a Remove background result: its alpha, on the input
    picture, sized to it (a result capped below a large input is scaled up)."""
    import numpy as np

    from ui.imaging import editor_mask
    from ui.mask_moves import editor_with_mask
    from ui.pages import Shown

    before = tmp_path / "in.png"
    Image.new("RGB", (200, 100), (10, 20, 30)).save(before)
    cut = Image.new("RGBA", (100, 50), (0, 0, 0, 0))
    cut.paste((255, 255, 255, 255), (25, 10, 75, 40))
    result = tmp_path / "out.png"
    cut.save(result)
    shown = Shown("job", str(result), str(result), "", 0, None, None, str(before))
    value = editor_with_mask(shown, "alpha")
    assert isinstance(value, dict) and value["background"] == str(before)
    value["background"] = Image.open(before)
    mask = editor_mask(value)
    assert mask is not None and mask.size == (200, 100)
    painted = np.asarray(mask) > 0
    assert painted[50, 100] and not painted[5, 5]
    assert editor_with_mask(shown, "mask") == "This result has no mask to use."

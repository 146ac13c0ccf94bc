"""Inpaint in the browser: a short brush stroke changes the picture under it, and nothing else."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter
from playwright.sync_api import Page, expect

from tests.browser.helpers import (
    fetch_image,
    fill,
    open_tab,
    paint_mask,
    run,
    upload,
    wait_result,
)

pytestmark = pytest.mark.browser


def test_stroke_changes_only_the_pixels_under_it(page: Page, pictures) -> None:
    open_tab(page, "inpaint")
    upload(page, "inpaint_editor", pictures["texture"])
    paint_mask(page, start=(0.35, 0.5), end=(0.6, 0.5), steps=4)
    fill(page, "inpaint_prompt", "a red ribbon")
    run(page, "inpaint")
    wait_result(page, "inpaint")
    expect(page.locator("#inpaint_coverage")).to_contain_text("Mask:")

    source = Image.open(pictures["texture"]).convert("RGB")
    result, _ = fetch_image(page, "#inpaint_result img")
    # The mask the run used, at full resolution (shown beside the editor as the run starts).
    mask, _ = fetch_image(page, "#inpaint_mask_preview img")
    assert result.size == source.size == mask.size

    painted = np.asarray(mask.convert("L")) > 0
    assert 0.005 < painted.mean() < 0.5, "the stroke painted a band, not nothing or everything"
    # Grow (4 px by default) widens what may change; allow that plus a pixel of rounding.
    grow = 4 + 2
    allowed = np.asarray(mask.convert("L").filter(ImageFilter.MaxFilter(2 * grow + 1))) > 0
    changed = np.any(np.asarray(result.convert("RGB")) != np.asarray(source), axis=2)

    outside = changed & ~allowed
    assert not outside.any(), f"{int(outside.sum())} pixels changed outside the stroke"
    assert changed[painted].mean() > 0.5, "the painted area was repainted"

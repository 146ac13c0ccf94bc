"""Inpaint in the browser: a short brush stroke changes the picture under it, and nothing else;
a painted editor is never re-sent by other tabs' events (Stop stays quick); Clear clears."""

from __future__ import annotations

import time

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
    sampling,
    small_generate,
    upload,
    wait_result,
)

pytestmark = pytest.mark.browser


def test_stroke_changes_only_the_pixels_under_it(page: Page, pictures, fake) -> None:
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

    # Issue 10 item 2: with the painted editor holding its picture, a Generate sends nothing of
    # it, and Stop (here Esc, the key for it) says what happened in well under 2 s.
    uploads: list[str] = []
    page.on("request", lambda r: uploads.append(r.url) if "/gradio_api/upload" in r.url else None)
    interrupts = fake.counters["interrupts"]
    fake.set_delays(step=0.3)
    small_generate(page, "while the editor holds a mask")
    run(page, "generate")
    sampling(page, "generate")
    started = time.monotonic()
    page.keyboard.press("Escape")
    expect(page.locator("#generate_msg")).to_contain_text("Stopped", timeout=2_000)
    took = time.monotonic() - started
    assert took < 2.0, f"Stop took {took:.1f} s"
    assert fake.wait_idle(10) and fake.counters["interrupts"] > interrupts
    expect(page.locator("#generate_status")).to_contain_text("Stopped.")
    assert uploads == [], f"{len(uploads)} uploads during a Generate: {uploads[:3]}"

    # Clear takes the stale mask thumbnail away too (issue 10 item 12); the label fits.
    open_tab(page, "inpaint")
    page.locator("#inpaint_clear").click()
    expect(page.locator("#inpaint_coverage")).to_contain_text("No mask yet")
    expect(page.locator("#inpaint_mask_preview img")).to_have_count(0)
    label = page.locator("#inpaint_editor label[data-testid='block-label']").first.bounding_box()
    tools = page.locator("#inpaint_editor .top-panel").first.bounding_box()
    assert label and tools and label["x"] + label["width"] <= tools["x"] + 1, (
        "the editor's toolbar covers its label")

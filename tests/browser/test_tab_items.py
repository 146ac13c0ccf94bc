"""Issue 10 (items 7-11) and issue 14 (items 4-5) in the tabs: uploads answered with the
studio's sentence, Outpaint's preview size, Edit's output size, Multi-ref's main picture,
reusable prompts, and masks that move to Inpaint."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from playwright.sync_api import Page, expect

from tests.browser.helpers import fetch_image, fill, open_tab, run, upload, wait_result

pytestmark = pytest.mark.browser


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def header_only_png(width: int, height: int) -> bytes:
    """A PNG whose header claims `width`×`height` (a decompression bomb's signature)."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IEND", b"")


def test_bad_uploads_get_the_studios_sentence_in_every_slot(page: Page, tmp_path: Path) -> None:
    """Issue 10 items 7 and 8: a zip renamed .png and a 900 MP header, in Edit's slot and in
    a Multi-ref slot, answer on upload with one sentence (no path, no Gradio error) and the
    slot is emptied."""
    junk = tmp_path / "holiday.png"
    junk.write_bytes(b"PK\x03\x04 this is a zip archive, renamed")
    bomb = tmp_path / "huge.png"
    bomb.write_bytes(header_only_png(30_000, 30_000))
    for mode, slot, path, needle in (
        ("edit", "edit_image", junk, "not an image the studio can read"),
        ("multiref", "multiref_image2", bomb, "the limit is 200 MP"),
    ):
        open_tab(page, mode)
        page.locator(f"#{slot} input[type=file]").first.set_input_files(str(path))
        message = page.locator(f"#{mode}_msg")
        expect(message).to_contain_text(needle)
        assert "/tmp" not in message.inner_text()
        expect(page.locator(f"#{slot} img")).to_have_count(0)
    # (The Inpaint editor never takes such a file: the browser cannot draw it, and Run then
    # says "Add a picture first"; checked by hand, left out here for the test-time budget.)
    expect(page.locator(".toast-body")).to_have_count(0)     # no Gradio error toast


def test_region_edit_mask_moves_to_inpaint_and_bounds_the_change(page: Page, pictures) -> None:
    """Issue 14 item 5: Region edit → "Edit this mask in Inpaint" → run: the picture and the
    detected mask are in the Inpaint editor, and the inpaint changes pixels inside that mask
    only (plus Inpaint's default 4 px grow)."""
    open_tab(page, "region_edit")
    upload(page, "region_edit_image", pictures["scene"])
    fill(page, "region_edit_region", "the yellow sun")
    fill(page, "region_edit_prompt", "make it a full moon")
    run(page, "region_edit")
    wait_result(page, "region_edit")
    mask, _ = fetch_image(page, "#region_edit_mask_out img")

    page.locator("#region_edit_mask_to_inpaint").click()
    expect(page.locator("#inpaint_run")).to_be_visible()
    expect(page.locator("#inpaint_msg")).to_contain_text("are in the editor")
    fill(page, "inpaint_prompt", "a paper lantern")
    run(page, "inpaint")
    wait_result(page, "inpaint")

    source = Image.open(pictures["scene"]).convert("RGB")
    result, _ = fetch_image(page, "#inpaint_result img")
    used, _ = fetch_image(page, "#inpaint_mask_preview img")   # the mask the run painted with
    assert result.size == source.size == mask.size == used.size
    region = np.asarray(mask.convert("L")) > 0
    assert np.array_equal(np.asarray(used.convert("L")) > 0, region), "the mask moved as it was"
    grow = 4 + 2
    allowed = np.asarray(mask.convert("L").filter(ImageFilter.MaxFilter(2 * grow + 1))) > 0
    changed = np.any(np.asarray(result.convert("RGB")) != np.asarray(source), axis=2)
    assert changed.any(), "the inpaint changed nothing"
    assert not (changed & ~allowed).any(), "pixels changed outside the moved mask"


def test_a_style_reaches_the_run_and_the_prompt_comes_back_from_recent(page: Page) -> None:
    """Issue 14 item 4: a saved style is appended to what runs; the prompt as typed is in the
    person's recent prompts, found by searching, and picking it fills the prompt box."""
    from backend.prompts import load_styles
    from tests.browser.helpers import small_generate

    photo = load_styles(Path("/nonexistent")).get("Photo")
    small_generate(page, "a lighthouse on a cliff")
    page.locator("#generate_style input").click()
    page.get_by_role("option", name="Photo", exact=True).click()
    run(page, "generate")
    wait_result(page, "generate")
    image, _ = fetch_image(page, "#generate_result img")
    params = json.loads(image.info["parameters"])
    assert params["prompt"] == f"a lighthouse on a cliff, {photo.prompt}"
    assert params["negative_prompt"].endswith(photo.negative)

    fill(page, "generate_prompt", "")
    recent = page.locator("#generate_recent input")
    recent.click()
    recent.fill("lightho")
    page.get_by_role("option", name="a lighthouse on a cliff", exact=True).click()
    expect(page.locator("#generate_prompt textarea")).to_have_value("a lighthouse on a cliff")

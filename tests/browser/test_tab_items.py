"""Issue 10 (items 7-11) and issue 14 (items 4-5) in the tabs: uploads answered with the
studio's sentence, Outpaint's preview size, Edit's output size, Multi-ref's main picture,
reusable prompts, and masks that move to Inpaint."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import fill, open_tab, run

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
    # The Inpaint editor: the browser cannot draw the file, so it never becomes a picture.
    open_tab(page, "inpaint")
    with page.expect_file_chooser() as chooser:
        page.locator("#inpaint_editor button[aria-label='Upload']").click()
    chooser.value.set_files(str(junk))
    fill(page, "inpaint_prompt", "a vase")
    run(page, "inpaint")
    expect(page.locator("#inpaint_msg")).to_contain_text("Add a picture first")
    expect(page.locator(".toast-body")).to_have_count(0)     # no Gradio error toast

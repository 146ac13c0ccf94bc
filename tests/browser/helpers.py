"""What a person does in the studio, as small Playwright steps shared by the browser tests
and the screenshot script."""

from __future__ import annotations

import io
import os
from pathlib import Path

from PIL import Image
from playwright.sync_api import Page, expect

TAB_NAMES = {
    "generate": "Generate",
    "edit": "Edit",
    "multiref": "Multi-ref",
    "remove_background": "Remove background",
    "region_edit": "Region edit",
    "inpaint": "Inpaint",
    "outpaint": "Outpaint",
}
SCREENSHOT_DIR_ENV = "STUDIO_SCREENSHOT_DIR"


def open_tab(page: Page, mode: str) -> None:
    page.get_by_role("tab", name=TAB_NAMES[mode], exact=True).click()
    expect(page.locator(f"#{mode}_run")).to_be_visible()


def upload(page: Page, elem_id: str, path: Path) -> None:
    """Put a file in an image input (or the inpaint editor) and wait until it shows."""
    if elem_id.endswith("_editor"):
        # Through the editor's own Upload button, as a person does: setting the hidden
        # file input directly is lost now and then while the WebGL canvas initialises
        # (2 of 6 tries on a loaded CPU; 6 of 6 this way).
        with page.expect_file_chooser() as chooser:
            page.locator(f"#{elem_id} button[aria-label='Upload']").click()
        chooser.value.set_files(str(path))
        # The editor arms the brush once it holds the picture.
        expect(page.locator(f"#{elem_id} button[aria-label='Brush'].highlight")).to_be_visible()
        return
    page.locator(f"#{elem_id} input[type=file]").first.set_input_files(str(path))
    expect(page.locator(f"#{elem_id} img").first).to_be_visible()


def fill(page: Page, elem_id: str, text: str) -> None:
    page.locator(f"#{elem_id} textarea").fill(text)


def run(page: Page, mode: str) -> None:
    page.locator(f"#{mode}_run").click()


def wait_result(page: Page, mode: str, timeout: float = 30_000) -> None:
    """Finished: the status says so, the info line has the size, the result is shown."""
    expect(page.locator(f"#{mode}_status")).to_contain_text("Done.", timeout=timeout)
    expect(page.locator(f"#{mode}_info")).to_contain_text("×")
    expect(page.locator(f"#{mode}_result img")).to_be_visible()


def small_generate(page: Page, prompt: str) -> None:
    """Generate's prompt and its faster size (the fake's work grows with the pixels)."""
    open_tab(page, "generate")
    fill(page, "generate_prompt", prompt)
    page.locator("#generate_size input").click()
    page.get_by_role("option", name="1024×1024 · 1:1 (faster)").click()


def sampling(page: Page, mode: str) -> None:
    """The tab's progress line counts sampler steps."""
    expect(page.locator(f"#{mode}_status .run-line")).to_contain_text("step ")


def history_captions(page: Page) -> list[str]:
    return page.locator("#history-gallery .caption-label").all_inner_texts()


def fetch_image(page: Page, selector: str) -> tuple[Image.Image, bytes]:
    """The file behind an <img> as the browser would download it (same cookies)."""
    src = page.locator(selector).first.get_attribute("src")
    assert src, f"no image at {selector}"
    response = page.request.get(src)
    assert response.ok, f"{src}: HTTP {response.status}"
    data = response.body()
    image = Image.open(io.BytesIO(data))
    image.load()
    return image, data


def paint_stroke(page: Page, elem_id: str, start=(0.3, 0.45), end=(0.55, 0.45), steps=4) -> None:
    """A short brush stroke across the editor canvas (fractions of the canvas box).

    Few mouse steps on purpose: every move repaints the WebGL canvas in software here.
    """
    canvas = page.locator(f"#{elem_id} canvas").first
    box = canvas.bounding_box()
    assert box, "editor canvas not visible"
    x0, y0 = box["x"] + box["width"] * start[0], box["y"] + box["height"] * start[1]
    x1, y1 = box["x"] + box["width"] * end[0], box["y"] + box["height"] * end[1]
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x1, y1, steps=steps)
    page.mouse.up()


def paint_mask(page: Page, mode: str = "inpaint", tries: int = 3, **stroke) -> None:
    """Paint like a person does: wait for the picture and the brush, stroke, look at the mask
    ("Show mask"), and stroke again if the canvas missed it (it can, on a loaded CPU)."""
    editor = f"{mode}_editor"
    expect(page.locator(f"#{editor} button[aria-label='Brush'].highlight")).to_be_visible()
    coverage = page.locator(f"#{mode}_coverage")
    for _ in range(tries):
        page.wait_for_timeout(500)  # the WebGL canvas finishes laying out the upload
        paint_stroke(page, editor, **stroke)
        page.locator(f"#{mode}_show_mask").click()
        try:
            expect(coverage).to_contain_text("Mask:", timeout=10_000)
            return
        except AssertionError:
            continue
    raise AssertionError(f"{tries} strokes left no mask: {coverage.inner_text()!r}")


def maybe_screenshot(page: Page, name: str, scroll: bool = True, show: str | None = None) -> None:
    """Only when asked (tests/browser/screenshots.py): tests do not touch the tree. `scroll`:
    from the top of the page (else where the page is scrolled to); `show`: a selector to
    bring into view."""
    folder = os.environ.get(SCREENSHOT_DIR_ENV)
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(2300)  # one sidebar tick, so it shows the state after the run
    # Toasts hidden for the picture only (removing Gradio's container would lose later ones).
    page.evaluate(
        "(top) => { document.querySelectorAll('.toast-wrap').forEach(t => t.style.visibility ="
        " 'hidden'); if (top) window.scrollTo(0, 0); }", scroll
    )
    if show:
        page.locator(show).first.evaluate("e => e.scrollIntoView({block: 'center'})")
    page.mouse.move(0, 0)
    page.wait_for_timeout(200)
    page.screenshot(path=str(Path(folder) / f"{name}.png"))
    page.evaluate("() => document.querySelectorAll('.toast-wrap').forEach(t =>"
                  " t.style.visibility = '')")

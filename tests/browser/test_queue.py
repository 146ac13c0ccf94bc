"""Jobs belong to the person, not to the click: Run queues while a job runs, every result lands
(in its tab and the history) whichever tab is open, a reload keeps the history and follows the
running job, a batch lands as a grid to pick from, and previews are never written to disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gradio.utils import get_upload_folder
from playwright.sync_api import Page, expect

from tests.browser.helpers import (
    fetch_image,
    fill,
    history_captions,
    maybe_screenshot,
    open_tab,
    run,
    sampling,
    small_generate,
    upload,
    wait_result,
)

pytestmark = pytest.mark.browser


def cache_files() -> set[Path]:
    return {p for p in Path(get_upload_folder()).rglob("*") if p.is_file()}


def test_three_quick_runs_wait_in_the_queue_strip_and_land_in_order(page: Page, fake) -> None:
    fake.set_delays(step=0.06)
    before = cache_files()
    prompts = ["first of three", "second of three", "third of three"]
    small_generate(page, prompts[0])
    run(page, "generate")
    for prompt in prompts[1:]:        # clicked while the first one runs
        fill(page, "generate_prompt", prompt)
        run(page, "generate")
    expect(page.locator("#generate_run")).to_have_text("Queue")
    strip = page.locator("#queue-strip .qs-job")
    expect(strip).to_have_count(3)
    expect(strip.nth(2)).to_contain_text("third of three")
    expect(strip.nth(2)).to_contain_text("in the studio's line")
    # Previews arrive inline (a data URL), over the result area; the sidebar says they are on.
    expect(page.locator("#generate_preview img[src^='data:image/jpeg']")).to_be_visible()
    expect(page.locator("#previews_state")).to_contain_text("Live previews: on")

    expect(page.locator("#generate_run")).to_have_text("Generate", timeout=60_000)
    wait_result(page, "generate")
    expect(strip).to_have_count(0)
    expect(page.locator("#generate_preview img")).to_have_count(0)
    captions = history_captions(page)
    assert captions[:3] == [f"Generate: {p}" for p in reversed(prompts)], captions
    image, _ = fetch_image(page, "#generate_result img")
    assert json.loads(image.info["parameters"])["prompt"] == prompts[-1]

    # Nothing but the three results (and their thumbnails) reached Gradio's cache: no preview
    # was written to disk.
    new = cache_files() - before
    assert all(p.parent.parent.name == "banana-library" for p in new), sorted(new)
    assert len(new) == 6, sorted(p.name for p in new)


def test_overlapping_jobs_both_land_and_a_reload_keeps_and_follows_them(
    page: Page, fake, pictures
) -> None:
    """Issue 10 item 1: a Generate, then an Edit while it runs: both land, once."""
    fake.set_delays(step=0.12)
    small_generate(page, "overlap: the generate")
    run(page, "generate")
    sampling(page, "generate")
    open_tab(page, "edit")
    upload(page, "edit_image", pictures["scene"])
    fill(page, "edit_prompt", "overlap: the edit")
    run(page, "edit")
    # The Generate lands in its tab while Edit is the tab on screen.
    expect(page.locator("#generate_status")).to_contain_text("Done.", timeout=30_000)
    expect(page.locator("#generate_info")).to_contain_text("Seed")
    wait_result(page, "edit")
    expect(page.locator("#history-gallery .caption-label").first).to_have_text(
        "Edit: overlap: the edit")
    captions = history_captions(page)
    assert captions.count("Generate: overlap: the generate") == 1, captions
    assert captions.count("Edit: overlap: the edit") == 1, captions

    # A reload mid-run: the history is still there, and the running job is followed to its end.
    fake.set_delays(step=0.25)
    small_generate(page, "after a reload")
    run(page, "generate")
    sampling(page, "generate")
    page.reload()
    page.locator("#mode-tabs").wait_for()
    expect(page.locator("#generate_run")).to_have_text("Queue")
    sampling(page, "generate")
    wait_result(page, "generate")
    captions = history_captions(page)
    assert captions[:3] == ["Generate: after a reload", "Edit: overlap: the edit",
                            "Generate: overlap: the generate"], captions


def test_a_batch_of_four_is_a_grid_and_the_picked_one_goes_to_edit(page: Page, fake) -> None:
    small_generate(page, "four variations")
    page.locator("#generate_batch").get_by_text("4", exact=True).click()
    run(page, "generate")
    grid = page.locator("#generate_grid img")
    expect(grid).to_have_count(4, timeout=30_000)
    expect(page.locator("#generate_info")).to_contain_text("Picture 1 of 4")
    seeds = [int(c.removeprefix("Seed ")) for c in
             page.locator("#generate_grid .caption-label").all_inner_texts()]
    assert seeds == list(range(seeds[0], seeds[0] + 4)), seeds
    assert history_captions(page)[:4] == ["Generate: four variations"] * 4
    maybe_screenshot(page, "generate-batch", show="#generate_grid")

    grid.nth(2).click()
    expect(page.locator("#generate_info")).to_contain_text("Picture 3 of 4")
    expect(page.locator("#generate_seed input")).to_have_value(str(seeds[2]))
    picked, _ = fetch_image(page, "#generate_result img")
    assert json.loads(picked.info["parameters"])["seed"] == seeds[2]

    page.locator("#generate_send_edit").click()
    expect(page.locator("#edit_image img")).to_be_visible()
    sent, _ = fetch_image(page, "#edit_image img")
    assert sent.convert("RGB").tobytes() == picked.convert("RGB").tobytes(), (
        "Edit got the picked picture")

    # A new run clears the previous run's info line while it is in progress (issue 10 item 12);
    # the strip's ✕ cancels one job; Stop stops the running one and the rest of its batch.
    fake.set_delays(step=0.2)
    open_tab(page, "generate")
    run(page, "generate")
    expect(page.locator("#generate_info")).to_have_text("")
    strip = page.locator("#queue-strip .qs-job")
    expect(strip).to_have_count(4)
    strip.nth(3).locator(".qs-cancel").click()
    expect(page.locator(".toast-body").last).to_contain_text("Stopped while it waited in line")
    expect(strip).to_have_count(3)
    page.locator("#generate_stop").click()
    expect(page.locator("#generate_msg")).to_contain_text("2 waiting pictures of this batch")
    expect(strip).to_have_count(0)


def test_without_previews_the_preview_area_counts_steps_and_hints_once(page: Page, fake) -> None:
    """Issue 17 item 2: ComfyUI started without --preview-method sends no pictures."""
    fake.set_preview_method("none")
    fake.set_delays(step=0.1)
    small_generate(page, "no previews here")
    run(page, "generate")
    preview = page.locator("#generate_preview")
    expect(preview).to_contain_text("Step ")
    expect(preview).to_contain_text("--preview-method auto")
    wait_result(page, "generate")
    expect(page.locator("#previews_state")).to_contain_text("Live previews: off")
    run(page, "generate")                   # the hint is said once per page
    expect(preview).to_contain_text("Step ")
    expect(preview).not_to_contain_text("--preview-method")
    wait_result(page, "generate")

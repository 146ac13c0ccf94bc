"""Stop, the sidebar's VRAM figures, and ComfyUI going away and coming back."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import (
    fill,
    open_tab,
    run,
    sampling,
    small_generate,
    upload,
    wait_result,
)

pytestmark = pytest.mark.browser
GIB = 1024**3


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def start_generate(page: Page) -> None:
    open_tab(page, "generate")
    fill(page, "generate_prompt", "a lighthouse at dusk")
    page.locator("#generate_size input").click()
    page.get_by_role("option", name="1024×1024 · 1:1 (faster)").click()
    run(page, "generate")


def test_stop_interrupts_the_job_in_comfyui(page: Page, fake) -> None:
    fake.set_delays(step=0.4)  # 20 steps: 8 s, time enough to press Stop mid-sampling
    before = fake.counters["interrupts"]
    start_generate(page)
    # Sampling is under way once the bar counts steps.
    expect(page.locator("#generate_status .run-line")).to_contain_text("step ")
    page.locator("#generate_stop").click()

    assert wait_until(lambda: fake.counters["interrupts"] > before), "no POST /interrupt"
    expect(page.locator("#generate_msg")).to_contain_text(
        "Stopped: ComfyUI was told to interrupt it.")
    assert fake.wait_idle(10), "the prompt kept running after Stop"
    expect(page.locator("#generate_result")).to_be_visible()
    expect(page.locator("#generate_info")).not_to_contain_text("Seed")
    # Issue 10 item 6: Stop says what actually happened.
    page.locator("#generate_stop").click()
    expect(page.locator("#generate_msg")).to_contain_text("Nothing to stop")


def vram_text(fake) -> str:
    """What the sidebar's VRAM meter should say for the fake's memory right now."""
    total = int(fake.config.vram_total_gb * GIB)
    return f"{(total - fake.vram_free) / GIB:.1f} / {total / GIB:.1f} GB"


def test_sidebar_vram_follows_a_run_and_free_vram(page: Page, fake, pictures) -> None:
    meter = page.locator("#vram_meter .meter-value")
    page.locator("#free_vram").click()
    expect(page.locator("#side_action")).not_to_be_empty()
    assert fake.wait_idle(10)
    idle = vram_text(fake)
    # A tick already in flight may briefly show the old figure; the next one must not.
    expect(meter).to_have_text(idle, timeout=10_000)

    open_tab(page, "remove_background")
    upload(page, "remove_background_image", pictures["portrait"])
    run(page, "remove_background")
    wait_result(page, "remove_background")
    loaded = vram_text(fake)
    assert loaded != idle, "the run left its model in the fake's VRAM"
    expect(meter).to_have_text(loaded, timeout=10_000)

    page.locator("#free_vram").click()
    expect(meter).to_have_text(idle, timeout=10_000)


def test_warm_up_every_mode_runs_a_tiny_job_per_mode(page: Page, fake) -> None:
    before = fake.counters["prompts_posted"]
    page.locator("#warm_up_all").click()
    action = page.locator("#side_action")
    expect(action).to_contain_text("Generate is warm", timeout=30_000)
    for label in ("Edit", "Multi-ref", "Remove background", "Inpaint", "Outpaint"):
        expect(action).to_contain_text(f"{label} is warm")
    # One prompt per mode at least (region edit runs its mask pass first).
    assert fake.counters["prompts_posted"] - before >= 7


def test_comfyui_down_then_back_without_restarting_the_studio(page: Page, fake) -> None:
    port = fake.url.rsplit(":", 1)[-1]
    fake.stop()
    try:
        expect(page.locator("#comfy_state")).to_contain_text(
            "ComfyUI offline — not reachable", timeout=20_000
        )
        start_generate(page)
        expect(page.locator("#generate_msg")).to_contain_text("not reachable", timeout=20_000)
        # The browser never learns where ComfyUI lives.
        assert f":{port}" not in page.content()
    finally:
        fake.start()
    expect(page.locator("#comfy_state")).to_contain_text("ComfyUI online", timeout=20_000)
    run(page, "generate")
    wait_result(page, "generate")


def test_closing_the_page_leaves_the_job_to_land_in_the_library(
    browser, studio_url: str, fake
) -> None:
    """The library keeps results, so a closed page does not stop its job: it lands, and the
    next page shows it. (With STUDIO_LIBRARY=off closing stops it: tests/unit/test_ui_run_loop.py.)"""
    fake.set_delays(step=0.06)
    before = fake.counters["interrupts"]
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        page = context.new_page()
        page.goto(studio_url)
        small_generate(page, "made by a page that closed")
        run(page, "generate")
        sampling(page, "generate")
    finally:
        context.close()
    assert fake.wait_idle(20), "the job never finished"
    assert fake.counters["interrupts"] == before, "closing the page stopped the job"
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        page = context.new_page()
        page.goto(studio_url)
        expect(page.locator("#history-gallery .caption-label").first).to_have_text(
            "Generate: made by a page that closed")
    finally:
        context.close()

"""The Chat tab (issue 13 item 2): a prompt → a picture, "make it night" → an edit of it (its
parent in the library is the first), then Stop during a run says what happened."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import SCREENSHOT_DIR_ENV, maybe_screenshot

pytestmark = pytest.mark.browser


def say(page: Page, text: str) -> None:
    box = page.locator("#chat_input textarea")
    expect(box).to_be_editable()
    box.fill(text)
    box.press("Enter")


def chat_items(data_dir: Path) -> list[tuple[str, str, str | None, str]]:
    """(id, mode, parent_id, surface) of the library's chat items, oldest first."""
    (db,) = data_dir.rglob("library.db")
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(
            "SELECT id, mode, parent_id, surface FROM items WHERE surface = 'chat' "
            "ORDER BY seq").fetchall()


def test_chat_draws_then_edits_that_picture_and_stop_cancels(
    page: Page, fake, studio_data_dir: Path, browser, studio_url: str
) -> None:
    page.get_by_role("tab", name="Chat", exact=True).click()
    log = page.locator("#chat_log")
    before = len(chat_items(studio_data_dir)) if list(studio_data_dir.rglob("library.db")) else 0

    say(page, "a red fox in the snow, 256x256")
    expect(log).to_contain_text("Generated \"a red fox in the snow\"")
    expect(log.locator("img")).to_have_count(1)
    expect(page.locator("#chat_picked img")).to_be_visible()

    say(page, "make it night")
    expect(log).to_contain_text("Edited the image: \"make it night\"")
    expect(log.locator("img")).to_have_count(2)
    items = chat_items(studio_data_dir)[before:]
    assert [(mode, surface) for _, mode, _, surface in items] == [
        ("generate", "chat"), ("edit", "chat")]
    assert items[1][2] == items[0][0], "the edit's parent is the first picture"

    # A click on the first picture branches from it: the next edit's parent is the first.
    log.locator(".message img").first.click()
    expect(page.locator("#chat_note")).to_contain_text("earlier picture")
    say(page, "make it snowy")
    expect(log).to_contain_text("Edited the image: \"make it snowy\"")
    items = chat_items(studio_data_dir)[before:]
    assert len(items) == 3 and items[2][2] == items[0][0], "the branch edits the first picture"
    expect(page.locator("#chat_note")).to_contain_text("latest picture")

    if os.environ.get(SCREENSHOT_DIR_ENV):      # the conversation from its first message
        log.locator(".bubble-wrap").evaluate("e => { e.scrollTop = 0; }")
        maybe_screenshot(page, "chat")

    # Stop mid-sampling: the reply says it was stopped, and the box takes a new message.
    fake.set_delays(step=0.4)
    say(page, "make it snow")
    expect(log).to_contain_text("step ")
    page.locator("#chat_stop").click()
    expect(page.locator("#chat_msg")).to_contain_text("Stopped")
    expect(log).to_contain_text("Stopped")
    expect(page.locator("#chat_input textarea")).to_be_editable()
    assert fake.wait_idle(10), "the prompt kept running after Stop"

    # The picture on the right goes to another tab like any result.
    page.locator("#chat_send_edit").click()
    expect(page.locator("#edit_image img")).to_be_visible()
    if os.environ.get(SCREENSHOT_DIR_ENV):
        phone_screenshot(browser, studio_url)


def phone_screenshot(browser, studio_url: str) -> None:
    """docs/screenshots/phone-chat.png: a turn and its picture on a 390×844 screen."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                  has_touch=True)
    try:
        page = context.new_page()
        page.goto(studio_url)
        page.locator("#mode-tabs").wait_for()
        page.get_by_role("button", name="More tabs").click()     # a phone shows two tabs
        page.locator(".overflow-dropdown button", has_text="Chat").click()
        say(page, "a red fox in the snow, watercolor")
        expect(page.locator("#chat_log")).to_contain_text("Generated")
        maybe_screenshot(page, "phone-chat", scroll=False, show="#chat_input")
    finally:
        context.close()

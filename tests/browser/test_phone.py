"""A phone (390×844): the sidebar starts closed behind a one-line status that opens it, and a
Generate's result is in view when it finishes (issue 14 item 3)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import maybe_screenshot, run, small_generate, wait_result

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}
OPEN = re.compile(r"\bopen\b")


def test_a_phone_starts_with_a_status_line_and_sees_its_result(browser, studio_url, fake) -> None:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        page.goto(studio_url)
        page.locator("#mode-tabs").wait_for()
        sidebar = page.locator("#sidebar")
        line = page.locator(".phone-status")
        expect(line).to_contain_text("Online")
        expect(sidebar).not_to_have_class(OPEN)
        maybe_screenshot(page, "phone-start")
        line.click()                           # the status line opens the sidebar
        expect(sidebar).to_have_class(OPEN)
        sidebar.locator(".toggle-button").click()
        expect(sidebar).not_to_have_class(OPEN)

        small_generate(page, "a lighthouse on a phone screen")
        run(page, "generate")
        wait_result(page, "generate")
        expect(page.locator("#generate_result img")).to_be_in_viewport()
        maybe_screenshot(page, "phone-generate", scroll=False)
    finally:
        context.close()

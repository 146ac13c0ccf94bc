"""A workflow app dropped into the apps folder of the running studio: "Reload workflows"
lists it in the Apps tab, its controls come from its roles and /object_info (the blur radius
is a slider of ImageBlur's own 1–31), Run blurs the picture, and a broken file is listed
with its reason. The file is removed afterwards, so the other tests see no app."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.helpers import upload
from tests.unit.test_app_files import blur


def test_a_dropped_workflow_becomes_an_app_that_runs(
    page: Page, workflows_dir: Path, pictures: dict[str, Path]
) -> None:
    apps = workflows_dir / "apps"
    apps.mkdir(exist_ok=True)
    made = [apps / "soft_blur.json", apps / "typo.json"]
    made[0].write_text(json.dumps(blur()), encoding="utf-8")
    made[1].write_text(json.dumps(blur(title="Blur #radius")), encoding="utf-8")
    try:
        page.get_by_role("tab", name="Apps", exact=True).click()
        page.locator("#apps_reload").click()
        expect(page.locator("#apps_notes")).to_contain_text("unknown role #radius")
        expect(page.locator("#apps_choice input")).to_have_value("Soft blur")

        slider = page.locator("#apps_blur_radius input[type=number]")
        expect(slider).to_have_attribute("max", "31")
        slider.fill("5")
        slider.press("Enter")
        upload(page, "apps_image", pictures["scene"])
        page.locator("#apps_run").click()
        expect(page.locator("#apps_status")).to_contain_text("Done", timeout=20_000)
        expect(page.locator("#apps_result img")).to_be_visible()
    finally:
        for path in made:
            path.unlink(missing_ok=True)
        page.locator("#apps_reload").click()   # gone now, not at the next 2 s check
        expect(page.locator("#apps_notes")).to_contain_text("No apps yet")

"""Two ComfyUI servers behind one studio, in the browser (issue 15): a row per server in the
sidebar, the person's running job labelled with the server it runs on, and Free VRAM on the
server chosen."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LOAD_DELAY, VIEWPORT, serve
from tests.browser.helpers import run, small_generate, wait_result
from tests.fake_comfy import FakeComfy

pytestmark = pytest.mark.browser
STEP_DELAY = 0.25      # 20 steps: ~5 s, time for two sidebar ticks while it runs


@pytest.fixture(scope="module")
def fakes(chromium_path: str) -> Iterator[dict[str, FakeComfy]]:
    made = {label: FakeComfy(step_delay=STEP_DELAY, load_delay=LOAD_DELAY).start()
            for label in ("a", "b")}
    try:
        yield made
    finally:
        for fake in made.values():
            fake.close()


@pytest.fixture(scope="module")
def two_server_url(fakes: dict[str, FakeComfy], tmp_path_factory: pytest.TempPathFactory,
                   workflows_dir: Path) -> Iterator[str]:
    from backend.settings import Settings

    env = {"STUDIO_DATA_DIR": str(tmp_path_factory.mktemp("studio-two")),
           "STUDIO_WORKFLOWS_DIR": str(workflows_dir)}
    servers = ",".join(f"{label}={fake.url}" for label, fake in fakes.items())
    with serve(Settings.from_env(env, comfy_url=servers, poll_interval_s=0.5)) as url:
        yield url


@pytest.fixture
def two_server_page(browser, two_server_url: str) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto(two_server_url)
    page.locator("#comfy_state").wait_for()
    try:
        yield page
    finally:
        context.close()


def test_two_server_rows_and_a_job_labelled_with_its_server(
    two_server_page: Page, fakes: dict[str, FakeComfy]
) -> None:
    page = two_server_page
    expect(page.locator("#comfy_state")).to_contain_text("2 of 2 servers online")
    rows = page.locator(".server-row")
    expect(rows).to_have_count(2)
    for label in ("a", "b"):
        row = page.locator(f"#server-{label}")
        expect(row).to_contain_text(label)
        expect(row).to_contain_text("online")
        expect(row).to_contain_text("modes")           # readiness: "7/7 modes"
    small_generate(page, "a lighthouse on two servers")
    run(page, "generate")
    # While it runs, the sidebar and the queue strip say where.
    mine = page.locator(".queue ul.mine")
    expect(mine).to_contain_text(re.compile(r"running now on [ab]"), timeout=20_000)
    where = page.locator(".queue ul.mine .job-server").first.inner_text()
    running = {label for label, fake in fakes.items() if fake.queue_ids()[0]}
    assert where in running or not running          # the fake that has it (unless done)
    expect(page.locator("#queue-strip")).to_contain_text(f"on {where}")
    expect(page.locator(f"#server-{where}")).to_contain_text("yours 1")
    wait_result(page, "generate")
    # The browser never learns where the servers are.
    html = page.content()
    for fake in fakes.values():
        assert f":{fake.config.port}" not in html


def test_free_vram_on_the_chosen_server(two_server_page: Page,
                                        fakes: dict[str, FakeComfy]) -> None:
    page = two_server_page
    before = {label: fake.counters["frees"] for label, fake in fakes.items()}
    page.locator("#server_choice input").click()
    page.get_by_role("option", name="b", exact=True).click()
    page.locator("#free_vram").click()
    expect(page.locator("#side_action")).to_contain_text("b: ")
    assert fakes["b"].counters["frees"] == before["b"] + 1
    assert fakes["a"].counters["frees"] == before["a"]

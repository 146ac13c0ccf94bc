"""Per-page state is bound to the logged-in user (issue 9 item 9): Bob, logged in, replaying
Ann's session hash gets nothing of hers — the page refuses him — while Ann's own request for
the same thing gets her picture (so the path the replay takes is a real one)."""

from __future__ import annotations

import contextlib
import json

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import AUTH_USERS, VIEWPORT, AuthStudio
from tests.browser.helpers import run, small_generate

pytestmark = pytest.mark.browser
USERS = AUTH_USERS


@pytest.fixture(scope="module")
def auth_url(auth_studio: AuthStudio) -> str:
    return auth_studio.url


def pick_call(config: dict, session_hash: str) -> dict:
    """Gradio's request for "picture 2 of the Generate grid", as the page sends it."""
    grid = next(c["id"] for c in config["components"]
                if c.get("props", {}).get("elem_id") == "generate_grid")
    fn = next(d["id"] for d in config["dependencies"] if [grid, "select"] in d["targets"])
    return {"fn_index": fn, "data": [None], "trigger_id": grid, "session_hash": session_hash,
            "event_data": {"index": 1, "value": None, "selected": True}}


def test_a_replayed_session_gives_another_login_nothing(browser, auth_url: str) -> None:
    context = browser.new_context(viewport=VIEWPORT)
    try:
        login = context.request.post(auth_url + "login", form={"username": "ann",
                                                               "password": USERS["ann"]})
        assert login.ok, login.text()
        page = context.new_page()
        hashes: list[str] = []

        def remember(request) -> None:
            if "/gradio_api/" in request.url and request.post_data:
                with contextlib.suppress(ValueError):
                    hashes.append(json.loads(request.post_data).get("session_hash") or "")

        page.on("request", remember)
        page.goto(auth_url)
        page.locator("#mode-tabs").wait_for()
        small_generate(page, "ann's private lighthouse")
        page.locator("#generate_batch").get_by_text("2", exact=True).click()
        run(page, "generate")
        expect(page.locator("#generate_grid img")).to_have_count(2, timeout=30_000)
        session = next(h for h in hashes if h)
        call = pick_call(context.request.get(auth_url + "config").json(), session)
        route = auth_url + "gradio_api/run/predict"

        theirs = context.request.post(route, data=json.dumps(call),
                                      headers={"Content-Type": "application/json"})
        assert theirs.ok and "banana-generate" in theirs.text(), "Ann gets her own picture"

        with httpx.Client(timeout=30) as bob:
            assert bob.post(auth_url + "login", data={"username": "bob",
                                                      "password": USERS["bob"]}).is_success
            replay = bob.post(route, json=call)
        assert replay.status_code == 200, replay.text
        assert "belongs to another login" in replay.text
        assert "banana-generate" not in replay.text and "/file=" not in replay.text
    finally:
        context.close()

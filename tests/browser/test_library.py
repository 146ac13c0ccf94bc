"""The Library tab (issue 11.2): three results survive a reload in the history and the
Library; search finds one by a word; open shows it full size through the owner-checked file
route with its parameters; star, the starred filter, restore into its tab, and delete after a
confirm step (its files are gone, its URL is a 404)."""

from __future__ import annotations

import base64
import html
import re
import secrets
from collections.abc import Callable
from contextlib import closing

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import AUTH_USERS, AuthStudio
from tests.browser.helpers import maybe_screenshot, run, small_generate, wait_result

pytestmark = pytest.mark.browser


def open_library(page: Page) -> None:
    page.get_by_role("tab", name="Library", exact=True).click()
    expect(page.locator("#library-search")).to_be_visible()


def search(page: Page, text: str) -> None:
    box = page.locator("#library-search textarea, #library-search input").first
    box.fill(text)
    box.press("Enter")


def test_library_lists_searches_opens_stars_restores_and_deletes(
    page: Page, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tag = "tag" + secrets.token_hex(3)          # the package's studio is shared by its tests
    small_generate(page, f"a {tag} windmill in the snow")
    run(page, "generate")
    wait_result(page, "generate")
    page.locator("#generate_prompt textarea").fill(f"a {tag} lighthouse at dusk")
    page.locator("#generate_batch").get_by_text("2", exact=True).click()
    run(page, "generate")
    expect(page.locator("#generate_grid img")).to_have_count(2, timeout=30_000)
    page.locator("#generate_batch").get_by_text("1", exact=True).click()

    page.reload()       # three results, after a reload: in the history and in the Library
    expect(page.locator("#history-gallery img").nth(2)).to_be_visible()
    open_library(page)
    search(page, tag)
    cards = page.locator("#library-grid .lib-card")
    expect(cards).to_have_count(3)
    expect(page.locator("#library-count")).to_contain_text("3 pictures match")

    search(page, f"{tag} wind")                 # every word, as a prefix
    expect(cards).to_have_count(1)
    cards.first.click()
    expect(cards.first).to_have_class(re.compile(r"\bselected\b"))
    detail = page.locator("#library-detail")
    expect(detail.locator("img.lib-full")).to_be_visible()
    expect(detail).to_contain_text("windmill in the snow")
    expect(page.locator("#library-info")).to_contain_text("Seed")
    src = detail.locator("img.lib-full").get_attribute("src") or ""
    assert src.startswith("/library/file/"), src
    full = page.request.get(page.url.rstrip("/") + src)
    assert full.ok and full.body()[:8] == b"\x89PNG\r\n\x1a\n"
    item_id = cards.first.get_attribute("data-item")

    page.locator("#library-star").click()
    expect(page.locator("#library-star")).to_have_text("★ Starred")
    expect(cards.first.locator(".lib-star")).to_be_visible()
    search(page, "")            # everything (for the picture: what the other tests made too)
    expect(page.locator(f"#library-grid [data-item='{item_id}'] .lib-star")).to_be_visible()
    maybe_screenshot(page, "library")
    search(page, tag)
    page.locator("#library-starred input").check()
    expect(cards).to_have_count(1)
    expect(cards.first).to_have_attribute("data-item", item_id or "")

    page.locator("#library-restore").click()
    expect(page.locator("#generate_prompt textarea")).to_have_value(f"a {tag} windmill in the snow")
    expect(page.locator("#generate_msg")).to_contain_text("from the library")

    open_library(page)                          # the filters and the open picture stay
    expect(cards).to_have_count(1)
    page.locator("#library-delete").click()
    expect(page.locator("#library-confirm")).to_be_visible()
    page.locator("#library-delete-no").click()
    expect(page.locator("#library-confirm")).to_be_hidden()
    expect(cards).to_have_count(1)              # "Keep it" kept it
    page.locator("#library-delete").click()
    page.locator("#library-delete-yes").click()
    expect(page.locator("#library-msg")).to_contain_text("Deleted the picture and its files.")
    expect(page.locator("#library-grid")).to_contain_text("Nothing matches")
    assert page.request.get(page.url.rstrip("/") + src).status == 404
    folders = list(tmp_path_factory.getbasetemp().glob(f"studio-data*/library/*/{item_id}"))
    assert item_id and not folders, folders

    page.locator("#library-starred input").uncheck()
    expect(cards).to_have_count(2)
    # A phone: the sidebar starts closed, the grid is three thumbnails wide, a tap brings the
    # open picture into view.
    page.set_viewport_size({"width": 390, "height": 844})
    page.locator("#sidebar .toggle-button").click()     # a phone starts with it closed
    expect(page.locator("#sidebar")).not_to_have_class(re.compile(r"\bopen\b"))
    search(page, "")
    expect(cards.first).to_be_visible()
    maybe_screenshot(page, "phone-library", show="#library-filters")
    search(page, tag)
    cards.first.click()
    expect(page.locator("#library-detail img.lib-full")).to_be_in_viewport()


# -- two logins (issue 11.3): through the UI's events, as the page sends them, and the routes --
def events_of(config: dict) -> Callable[[str, str], tuple[int, int]]:
    ids = {c.get("props", {}).get("elem_id"): c["id"] for c in config["components"]}

    def find(elem_id: str, event: str) -> tuple[int, int]:
        target = ids[elem_id]
        return next(d["id"] for d in config["dependencies"]
                    if [target, event] in d["targets"]), target

    return find


def caller(client: httpx.Client, config: dict) -> Callable[..., str]:
    """Sends one of the page's events as the page does (fn_index, trigger, session)."""
    event = events_of(config)

    def call(session: str, elem_id: str, kind: str, data: list,
             event_data: dict | None = None) -> str:
        fn, trigger = event(elem_id, kind)
        answer = client.post("gradio_api/run/predict", json={
            "fn_index": fn, "trigger_id": trigger, "session_hash": session, "data": data,
            "event_data": event_data})
        assert answer.status_code == 200, answer.text
        return answer.text

    return call


def login(url: str, user: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=30)
    assert client.post("login", data={"username": user, "password": AUTH_USERS[user]}).is_success
    return client


def test_another_login_never_lists_opens_restores_deletes_or_fetches_your_pictures(
    auth_studio: AuthStudio,
) -> None:
    anns_id, bobs_id = auth_studio.seeded["ann"], auth_studio.seeded["bob"]
    with closing(login(auth_studio.url, "ann")) as ann, closing(login(auth_studio.url, "bob")) as bob:
        config = ann.get("config").json()
        as_ann, as_bob = caller(ann, config), caller(bob, config)

        def listing(client: httpx.Client, session: str) -> str:
            call = as_ann if client is ann else as_bob
            return call(session, "library-search", "submit",
                        ["", "all", "All time", False, None, None])

        anns = listing(ann, "ann-page")
        assert anns_id in anns and "lighthouse" in anns
        assert bobs_id not in anns and "windmill" not in anns
        bobs = listing(bob, "bob-page")
        assert bobs_id in bobs and anns_id not in bobs and "lighthouse" not in bobs
        thumb = re.search(r"src='(/library/file/[^']+)'", anns.replace('\\"', "'"))
        assert thumb, anns

        # Bob names Ann's picture: not opened, so nothing to restore, star or delete.
        opened = as_bob("bob-page", "library-grid", "click", [None, None], {"item": anns_id})
        assert "not in your library" in opened and "/library/file/" not in opened
        for button in ("library-restore", "library-star", "library-delete-yes"):
            answer = as_bob("bob-page", button, "click", [None, None])
            assert "not in your library" in answer, (button, answer)
            assert "lighthouse" not in answer and anns_id not in answer
        # Bob replaying Ann's page session is refused outright.
        assert "belongs to another login" in listing(bob, "ann-page")
        assert anns_id in listing(ann, "ann-page"), "Ann's picture is still hers"

        # The file route: Ann's URL serves Ann, not Bob, not someone logged out.
        url = html.unescape(thumb.group(1))
        assert ann.get(url).status_code == 200
        assert bob.get(url).status_code == 404
        assert httpx.get(auth_studio.url.rstrip("/") + url).status_code == 404
        # Gradio's own file route. Ann restores her picture: its files go to the tab through
        # Gradio's cache; the cache URL serves Ann, not Bob (ui/cache_guard.py), nor a guess.
        as_ann("ann-page", "library-grid", "click", [None, None], {"item": anns_id})
        restored = as_ann("ann-page", "library-restore", "click", [None, None])
        cached = sorted(set(re.findall(r"/gradio_api/file=[^\"]+banana-library/[^\"]+", restored)))
        assert cached, restored
        for path in cached:
            assert ann.get(path).status_code == 200, path
            assert bob.get(path).status_code == 404, path
        guess = cached[0].rsplit("/", 2)[0] + "/" + "0" * 64 + "/result.png"
        assert bob.get(guess).status_code in (403, 404)


def test_per_browser_libraries_stay_apart_through_the_ui_events(
    per_browser_studio: AuthStudio,
) -> None:
    """STUDIO_LIBRARY=per-browser without logins: the browser id (kept in the browser's
    storage, sent with each event) decides; another browser's picture is not listed or
    opened, and a made-up grant on its file is a 404."""
    (ann_browser, anns_id), (bob_browser, bobs_id) = per_browser_studio.seeded.items()
    with httpx.Client(base_url=per_browser_studio.url, timeout=30) as client:
        call = caller(client, client.get("config").json())
        anns = call("ann-page", "library-search", "submit",
                    ["", "all", "All time", False, None, ann_browser])
        bobs = call("bob-page", "library-search", "submit",
                    ["", "all", "All time", False, None, bob_browser])
        assert anns_id in anns and bobs_id not in anns and "windmill" not in anns
        assert bobs_id in bobs and anns_id not in bobs and "lighthouse" not in bobs
        opened = call("bob-page", "library-grid", "click", [None, bob_browser],
                      {"item": anns_id})
        assert "not in your library" in opened and "/library/file/" not in opened
        thumb = re.search(r"src='(/library/file/[^']+)'", anns.replace('\\"', "'"))
        assert thumb, anns
        url = html.unescape(thumb.group(1))
        assert client.get(url).status_code == 200          # the page's own URL
        grant = url.split("/")[3]
        forged = base64.urlsafe_b64encode(f"browser:{bob_browser}".encode()).decode()
        assert client.get(url.replace(grant, forged.rstrip("=") + "." + grant.split(".")[1])
                          ).status_code == 404

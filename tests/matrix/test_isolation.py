"""Isolation: two Gradio sessions never see each other's results, history or jobs; what the
studio puts in ComfyUI is named by content; the studio serves only what it produced and never
ComfyUI's files, routes or address.

docs/robustness.md has the same rows as a table.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.matrix import inputs
from tests.matrix.conftest import MatrixStudio
from tests.matrix.surfaces import UIResult, UISession, comfy_addresses, loaded_images

pytestmark = pytest.mark.timeout(60)
UPLOAD_NAME = re.compile(r"banana/[0-9a-f]{24}\.png")


@pytest.fixture(scope="module")
def alice(studio: MatrixStudio) -> Iterator[UISession]:
    session = UISession(studio.url)
    yield session
    session.close()


@pytest.fixture(scope="module")
def bob(studio: MatrixStudio) -> Iterator[UISession]:
    session = UISession(studio.url)
    yield session
    session.close()


def captions(shown: UIResult) -> list[str]:
    items = shown.outputs.get("history-gallery") or []
    return [item.get("caption") or "" for item in items if isinstance(item, dict)]


def generate(session: UISession, prompt: str) -> UIResult:
    shown = session.run("generate", prompt=prompt, width=256, height=256, steps=2)
    assert shown.status == "Done.", shown
    return shown


def test_two_sessions_never_see_each_others_results(alice: UISession, bob: UISession) -> None:
    assert alice.session_hash != bob.session_hash
    first = generate(alice, "alice's lighthouse")
    theirs = generate(bob, "bob's windmill")
    second = generate(alice, "alice's harbour")
    assert captions(second) == ["Generate: alice's harbour", "Generate: alice's lighthouse"]
    assert captions(theirs) == ["Generate: bob's windmill"]
    alices = {first.result_url, second.result_url, *first.gallery_urls, *second.gallery_urls}
    bobs = {theirs.result_url, *theirs.gallery_urls}
    assert not alices & bobs
    # Bob's next run still shows only his own history.
    again = generate(bob, "bob's mill again")
    assert captions(again) == ["Generate: bob's mill again", "Generate: bob's windmill"]


def test_the_sidebar_lists_only_your_own_jobs(
    studio: MatrixStudio, alice: UISession, bob: UISession
) -> None:
    studio.fake.set_delays(step=0.05)      # 20 steps: a second to look at the sidebars
    job, outputs = alice.submit("generate", prompt="a slow one", width=256, height=256, steps=20)
    deadline = time.monotonic() + 20
    while "running now" not in alice.sidebar():
        assert time.monotonic() < deadline, "Alice's job never showed as running"
        time.sleep(0.1)
    bobs_view = bob.sidebar()
    assert "<b>1</b> running" in bobs_view          # Bob sees the shared queue...
    assert "class='mine'" not in bobs_view          # ...but no job of his
    assert alice.collect(job, outputs).status == "Done."


def test_uploads_are_named_by_content(studio: MatrixStudio, alice: UISession,
                                      bob: UISession) -> None:
    """Same bytes → the same name (shared harmlessly: identical content); other bytes →
    another name; the name is the SHA-256 of what was uploaded, so it cannot be guessed
    without the picture itself."""
    same = inputs.png(inputs.picture((120, 80), inputs.RED))
    names = []
    for session in (alice, bob):
        shown = session.run("edit", image=(same, "holiday.png"), prompt="add snow", steps=2)
        assert shown.status == "Done.", shown
        (name,) = loaded_images(studio.fake)
        names.append(name)
    other = alice.run("edit", image=(inputs.png(inputs.picture((120, 80), inputs.GREEN)),
                                     "holiday.png"), prompt="add snow", steps=2)
    assert other.status == "Done."
    (other_name,) = loaded_images(studio.fake)
    assert names[0] == names[1] != other_name
    for name in (names[0], other_name):
        assert UPLOAD_NAME.fullmatch(name), name
        content = (studio.fake.input_dir / name).read_bytes()
        assert name == f"banana/{hashlib.sha256(content).hexdigest()[:24]}.png"
    assert len(list((studio.fake.input_dir / "banana").iterdir())) >= 2


# --- what the studio serves ----------------------------------------------------------------


@pytest.fixture(scope="module")
def a_result(studio: MatrixStudio, alice: UISession) -> str:
    """The URL of one result the studio produced (the positive control)."""
    url = generate(alice, "a result to serve").result_url
    assert url is not None
    return url


def refused_paths(studio: MatrixStudio, result_url: str) -> dict[str, str]:
    fake = studio.fake
    output = next(fake.output_dir.rglob("*.png"))
    upload = next((fake.input_dir / "banana").iterdir())
    cache_dir = result_url.split("file=", 1)[1].rsplit("/", 1)[0]
    up = "/".join([".."] * (cache_dir.count("/") + 1))
    return {
        "etc_passwd": "/etc/passwd",
        "workflow_template": str(studio.settings.workflows_dir / "generate.json"),
        "comfyui_output": str(output),
        "comfyui_input": str(upload),
        "dot_dot_out_of_the_cache": f"{cache_dir}/{up}/etc/passwd",
        "encoded_dot_dot": f"{cache_dir}/{'/'.join(['%2e%2e'] * (cache_dir.count('/') + 1))}"
                           "/etc/passwd",
        "comfyui_view_url": f"{fake.url}/view?filename={output.name}&subfolder=banana&type=output",
    }


ROUTES = ("/gradio_api/file={}", "/gradio_api/file/{}", "/file={}")
CASES = ("etc_passwd", "workflow_template", "comfyui_output", "comfyui_input",
         "dot_dot_out_of_the_cache", "encoded_dot_dot", "comfyui_view_url")


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("case", CASES)
def test_file_routes_refuse_what_the_studio_did_not_produce(
    studio: MatrixStudio, a_result: str, route: str, case: str
) -> None:
    served = httpx.get(a_result, timeout=10)
    assert served.status_code == 200 and served.content.startswith(b"\x89PNG")
    target = refused_paths(studio, a_result)[case]
    response = httpx.get(studio.url + route.format(target), timeout=10)
    assert response.status_code in (403, 404), (case, response.status_code)
    assert b"root:" not in response.content and not response.content.startswith(b"\x89PNG")


COMFY_ROUTES = [("GET", "/view?filename=x.png&type=output"), ("GET", "/api/view"),
                ("GET", "/gradio_api/view"), ("GET", "/queue"), ("GET", "/history"),
                ("GET", "/object_info"), ("GET", "/system_stats"), ("GET", "/ws"),
                ("GET", "/__fake__/state"), ("POST", "/prompt"), ("POST", "/upload/image"),
                ("POST", "/interrupt"), ("POST", "/free"), ("POST", "/api/prompt")]


@pytest.mark.parametrize(("method", "path"), COMFY_ROUTES, ids=lambda v: str(v))
def test_no_route_proxies_comfyui(studio: MatrixStudio, method: str, path: str) -> None:
    # (ComfyUI's own counters cannot tell: the monitor polls /queue and /system_stats itself)
    response = httpx.request(method, studio.url + path, json={} if method == "POST" else None,
                             timeout=10)
    assert response.status_code in (404, 405), response.text[:200]
    assert response.json() == {"detail": "Not Found" if response.status_code == 404
                               else "Method Not Allowed"}


def _pages(studio: MatrixStudio, session: UISession) -> dict[str, str]:
    get = {name: httpx.get(studio.url + path, timeout=30).text for name, path in (
        ("page", "/"), ("config", "/config"), ("info", "/gradio_api/info"),
        ("healthz", "/healthz"), ("metrics", "/metrics"))}
    get["sidebar"] = session.sidebar()
    return get


def test_comfyuis_address_never_leaks(studio: MatrixStudio, alice: UISession) -> None:
    hide = comfy_addresses(studio.fake.url)
    texts = _pages(studio, alice)
    studio.fake.set_models("diffusion_models", [])
    texts["api_missing_model"] = studio.generate().text
    texts["ui_missing_model"] = alice.run("generate", prompt="x", width=256, height=256,
                                          steps=1).message
    studio.fake.stop()
    texts["api_down"] = studio.generate().text
    texts["ui_down"] = alice.run("generate", prompt="x", width=256, height=256, steps=1).message
    deadline = time.monotonic() + 10
    while studio.ctx.monitor.snapshot().online:             # until the monitor sees it down
        assert time.monotonic() < deadline, "the monitor never noticed ComfyUI was down"
        time.sleep(0.1)
    texts.update({f"{name}_down": text for name, text in _pages(studio, alice).items()})
    for name, text in texts.items():
        assert text, name
        for secret in hide:
            assert secret not in text, f"{secret} in {name}: {text[:300]}"


def test_a_result_url_is_the_only_key_to_it(a_result: str) -> None:
    """Gradio does not tie served files to a session: whoever has the URL gets the file. The
    URL holds a SHA-256 folder (unguessable) and is only ever sent to the session that made
    the result (test_two_sessions_never_see_each_others_results)."""
    folder = a_result.split("file=", 1)[1].rsplit("/", 2)[-2]
    assert re.fullmatch(r"[0-9a-f]{64}", folder), folder
    assert httpx.get(a_result, timeout=10).status_code == 200      # no cookie, no session

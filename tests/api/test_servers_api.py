"""Two ComfyUI servers behind one studio's HTTP side (issue 15): /healthz lists each by label
(never an address), stays 200 while one answers and counts on how many servers each mode is
ready; /metrics has per-backend series; the CLI's --backend acts on one server or all."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from backend.cli import main
from backend.settings import Settings
from tests.api.conftest import api_app, auth, free_port, serve, studio_settings
from tests.api.test_health_metrics import metric
from tests.fake_comfy import FakeComfy

pytestmark = pytest.mark.timeout(90)


@dataclass
class Pair:
    url: str
    settings: Settings
    a: FakeComfy
    b: FakeComfy


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    a, b = FakeComfy().start(), FakeComfy().start()
    settings = studio_settings(a, comfy_url=f"a={a.url},b={b.url}")
    application = api_app(settings)
    port = free_port()
    server, thread = serve(application, port)
    try:
        yield Pair(f"http://127.0.0.1:{port}", settings, a, b)
    finally:
        server.should_exit = True
        thread.join(10)
        a.close()
        b.close()


def health(pair: Pair, until: Any = None) -> httpx.Response:
    deadline = time.monotonic() + 15
    while True:
        response = httpx.get(pair.url + "/healthz", timeout=20)
        if until is None or until(response) or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def test_healthz_lists_each_server_by_label(pair: Pair) -> None:
    response = health(pair, lambda r: all(
        s["reachable"] and s["modes"]["generate"] for s in r.json()["servers"].values()))
    assert response.status_code == 200
    body = response.json()
    assert list(body["servers"]) == ["a", "b"]
    for one in body["servers"].values():
        assert one["reachable"] is True and one["version"] == "0.3.64"
        assert set(one["modes"]) == set(body["modes"])
    assert body["modes"]["generate"] == {"ready": True, "missing": "", "servers": 2}
    for port in (pair.a.config.port, pair.b.config.port):
        assert str(port) not in response.text
    assert "127.0.0.1" not in response.text

    pair.b.stop()
    try:
        down = health(pair, lambda r: not r.json()["servers"]["b"]["reachable"])
        assert down.status_code == 200                     # a still runs every ready mode
        body = down.json()
        assert body["comfyui"]["reachable"] is True
        assert body["servers"]["b"]["reachable"] is False
        assert "not reachable" in body["servers"]["b"]["error"]
        assert body["servers"]["b"]["modes"]["generate"] is None
        assert body["modes"]["generate"]["servers"] == 1
        assert str(pair.b.config.port) not in down.text
        code, lines = run(["health", "--url", pair.url, "--backend", "b"], pair.settings)
        assert code == 1 and "cannot reach ComfyUI b" in lines[0]
        code, lines = run(["health", "--url", pair.url, "--backend", "a"], pair.settings)
        assert code == 0 and "ComfyUI a 0.3.64" in lines[0], lines
        pair.a.stop()
        gone = health(pair, lambda r: r.status_code == 503)
        assert gone.status_code == 503 and gone.json()["comfyui"]["reachable"] is False
    finally:
        pair.a.start()
        pair.b.start()
    health(pair, lambda r: r.status_code == 200)


def test_metrics_say_which_server_ran_what(pair: Pair) -> None:
    health(pair, lambda r: all(s["reachable"] for s in r.json()["servers"].values()))
    for seed in range(4):
        response = httpx.post(pair.url + "/v1/images/generations", headers=auth(), timeout=60,
                              json={"prompt": "p", "size": "256x256", "steps": 1, "seed": seed})
        assert response.status_code == 200, response.text
    text = httpx.get(pair.url + "/metrics", timeout=10).text
    ran = {label: metric(text, "studio_backend_jobs_total", backend=label, mode="generate",
                         outcome="finished") for label in ("a", "b")}
    assert sum(ran.values()) >= 4
    assert metric(text, "studio_backend_up", backend="a") == 1
    assert metric(text, "studio_backend_vram_total_bytes", backend="b") > 0
    assert 'studio_backend_queue{backend="a",state="studio"}' in text
    assert "studio_failovers_total" in text or "# HELP studio_failovers_total" in text
    assert metric(text, "studio_comfyui_up") == 1               # the totals stay as they were


def run(argv: list[str], settings: Settings) -> tuple[int, list[str]]:
    lines: list[str] = []
    return main(argv, settings, say=lines.append), lines


def test_free_and_warmup_take_a_backend(pair: Pair) -> None:
    before_a, before_b = pair.a.counters["frees"], pair.b.counters["frees"]
    code, lines = run(["free", "--backend", "b"], pair.settings)
    assert code == 0 and lines[0].startswith("b: "), lines
    assert (pair.a.counters["frees"], pair.b.counters["frees"]) == (before_a, before_b + 1)
    code, lines = run(["free"], pair.settings)
    assert code == 0 and "a: " in lines[0] and " b: " in lines[0]
    with pytest.raises(SystemExit):
        run(["free", "--backend", "c"], pair.settings)    # argparse names the choices
    posted = pair.b.counters["prompts_posted"]
    code, lines = run(["warmup", "--modes", "generate", "--backend", "a"], pair.settings)
    assert code == 0 and lines[-1] == "all modes warm", lines
    assert pair.b.counters["prompts_posted"] == posted       # only a was warmed
    code, lines = run(["warmup", "--modes", "generate"], pair.settings)
    assert code == 0 and {line.split(":")[0] for line in lines[:-1]} == {"a", "b"}, lines


"""/healthz up and down, /metrics after some jobs, and the job-level faults the API surfaces
(timeout, ComfyUI restarted mid-job, interrupted, a client that hangs up)."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.api.conftest import api_app, auth, free_port, serve, studio_settings


def test_healthz_up_then_down_then_up(studio):
    response = httpx.get(studio.url + "/healthz", timeout=20)
    assert response.status_code == 200
    body = response.json()
    assert body["studio"] == "ok"
    assert body["comfyui"]["reachable"] is True
    assert body["comfyui"]["version"]
    assert set(body["modes"]) == {"generate", "edit", "multiref", "remove_background",
                                  "region_edit", "inpaint", "outpaint"}
    assert all(m["ready"] is True and m["missing"] == "" for m in body["modes"].values())

    studio.fake.stop()
    deadline = time.monotonic() + 10
    while True:   # the snapshot may be fresh from before the stop: wait for the next poll
        response = httpx.get(studio.url + "/healthz", timeout=20)
        if response.status_code == 503 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert response.status_code == 503
    down = response.json()
    assert down["studio"] == "ok" and down["comfyui"]["reachable"] is False
    assert "not reachable" in down["comfyui"]["error"]
    assert str(studio.fake.config.port) not in down["comfyui"]["error"]

    studio.fake.start()
    deadline = time.monotonic() + 10
    while httpx.get(studio.url + "/healthz", timeout=20).status_code != 200:
        assert time.monotonic() < deadline, "healthz did not recover"
        time.sleep(0.1)


def test_healthz_names_a_missing_pack(studio):
    studio.fake.hide_classes("LanPaint_KSampler")
    studio.ctx.monitor._readiness_at = 0.0     # do not wait 30 s for the periodic re-check
    deadline = time.monotonic() + 10
    while True:
        body = httpx.get(studio.url + "/healthz", timeout=20).json()
        if body["modes"]["inpaint"]["ready"] is False or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert body["modes"]["inpaint"]["ready"] is False
    assert "LanPaint_KSampler" in body["modes"]["inpaint"]["missing"]
    assert body["modes"]["generate"]["ready"] is True


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        key, _, rest = sample.partition("{")
        if key != name:
            continue
        got = ",".join(sorted(p for p in rest.rstrip("}").split(",") if p))
        if got == want:
            return float(value)
    return 0.0


def test_metrics_count_api_jobs_per_mode(studio):
    before = httpx.get(studio.url + "/metrics", timeout=10).text
    done = metric(before, "studio_job_seconds_count", mode="generate", surface="api")
    for seed in range(3):
        response = httpx.post(
            studio.v1 + "/images/generations", headers=auth(), timeout=60,
            json={"prompt": "p", "size": "256x256", "steps": 1, "seed": seed},
        )
        assert response.status_code == 200
    studio.fake.oom_at("KSampler", times=1)
    response = httpx.post(studio.v1 + "/images/generations", headers=auth(), timeout=60,
                          json={"prompt": "p", "size": "256x256", "steps": 1})
    assert response.status_code == 507

    response = httpx.get(studio.url + "/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert metric(text, "studio_job_seconds_count", mode="generate", surface="api") == done + 3
    assert metric(text, "studio_job_seconds_bucket", mode="generate", surface="api",
                  le="+Inf") == done + 3
    assert metric(text, "studio_job_errors_total", mode="generate", surface="api",
                  kind="out_of_memory") >= 1
    assert metric(text, "studio_jobs_total", mode="generate", surface="api") >= done + 4
    assert metric(text, "studio_comfyui_up") == 1
    assert metric(text, "studio_vram_total_bytes") > 0
    assert "studio_comfyui_queue" in text and "studio_model_swaps_total" in text


async def test_ui_jobs_count_as_ui(studio):
    """Anything calling ctx.studio.run outside the API (the UI) is counted as surface="ui"."""
    from backend.modes.generate import GenerateRequest

    metrics = studio.ctx.metrics
    before = metrics.finished.labels("generate", "ui")._value.get()
    # The studio's client lives on the server's loop: run the job there, as a UI handler would.
    loop = studio_loop(studio)
    import asyncio

    async def job() -> list[str]:
        kinds = []
        async for event in studio.ctx.studio.run(
            GenerateRequest(prompt="ui", width=256, height=256, steps=1)
        ):
            kinds.append(type(event).__name__)
        return kinds

    kinds = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(job(), loop))
    assert kinds[-1] == "Finished"
    assert metrics.finished.labels("generate", "ui")._value.get() == before + 1


def studio_loop(studio):
    httpx.get(studio.url + "/metrics", timeout=10)    # starts the monitor on the server's loop
    task = studio.ctx.monitor._task
    assert task is not None, "the app's lifespan starts the monitor"
    return task.get_loop()


# --- job-level faults, each on a small app of its own (settings differ) -----------------------


@pytest.fixture
def small_studio(fake_comfy):
    """The API routes alone (no UI) over a context of their own, for settings tests vary."""
    made = []

    def make(**overrides):
        application = api_app(studio_settings(fake_comfy, **overrides))
        port = free_port()
        server, thread = serve(application, port)
        made.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield make
    for server, thread in made:
        server.should_exit = True
        thread.join(10)


def post_generate(url: str, timeout: float = 30.0) -> httpx.Response:
    return httpx.post(url + "/v1/images/generations", headers=auth(), timeout=timeout,
                      json={"prompt": "slow", "size": "256x256", "steps": 4})


def test_timeout_is_504_and_cancels_the_prompt(fake_comfy, small_studio):
    url = small_studio(job_timeout_s=0.5)
    fake_comfy.set_delays(node=0.3)
    response = post_generate(url)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "timeout"
    assert response.headers["x-should-retry"] == "false"
    assert fake_comfy.wait_idle(10)


def test_comfyui_restart_mid_job_is_503_lost(fake_comfy, small_studio):
    url = small_studio()
    fake_comfy.set_delays(node=0.3)
    result = {}
    thread = threading.Thread(target=lambda: result.update(r=post_generate(url)))
    thread.start()
    wait_running(fake_comfy)
    fake_comfy.restart()
    thread.join(30)
    response = result["r"]
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "comfyui_restarted"


def test_interrupted_in_comfyui_is_503(fake_comfy, small_studio):
    url = small_studio()
    fake_comfy.set_delays(node=0.3)
    result = {}
    thread = threading.Thread(target=lambda: result.update(r=post_generate(url)))
    thread.start()
    wait_running(fake_comfy)
    httpx.post(fake_comfy.url + "/interrupt", json={}, timeout=5)
    thread.join(30)
    assert result["r"].status_code == 503
    assert result["r"].json()["error"]["code"] == "interrupted"


def test_client_hanging_up_cancels_the_job_in_comfyui(fake_comfy, small_studio):
    url = small_studio()
    fake_comfy.set_delays(node=0.3)
    with pytest.raises(httpx.ReadTimeout):
        post_generate(url, timeout=1.0)
    # The studio noticed the disconnect and interrupted (or deleted) the prompt.
    assert fake_comfy.wait_idle(10)
    assert fake_comfy.counters["interrupts"] >= 1 or fake_comfy.counters["prompts_executed"] == 0


def wait_running(fake) -> None:
    deadline = time.monotonic() + 10
    while not fake.queue_ids()[0]:
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.02)


def test_out_of_memory_retry_answers_with_the_smaller_image(fake_comfy, small_studio):
    url = small_studio(oom_retry=True)
    # Freeing ComfyUI's models and the GGUF variant come first (issue 16): the sampler runs
    # out of memory through both, then the smaller retry goes through.
    fake_comfy.oom_at("KSampler", times=3)
    response = httpx.post(url + "/v1/images/generations", headers=auth(), timeout=30,
                          json={"prompt": "big", "size": "512x512", "steps": 1})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["size"] == "448x448"                     # ~75% of the pixels, same seed
    assert len(body["data"]) == 1
    assert [n.split(":")[0].split(";")[0] for n in body["data"][0]["notes"][-3:]] == [
        "Out of memory at 512×512", "Out of memory with fp8 at 512×512",
        "Out of memory at 512×512"]
    metrics = httpx.get(url + "/metrics", timeout=10).text
    for step in ("free", "gguf", "smaller"):
        assert f'studio_oom_retries_total{{mode="generate",step="{step}"}} 1.0' in metrics


def test_auto_variant_answers_with_gguf_on_a_shared_24_gb_card(fake_comfy, small_studio):
    fake_comfy.set_vram_total(24)
    fake_comfy.set_other_tenant(6)
    url = small_studio()
    response = httpx.post(url + "/v1/images/generations", headers=auth(), timeout=30,
                          json={"prompt": "a lighthouse", "size": "256x256", "steps": 1})
    assert response.status_code == 200, response.text
    assert response.json()["data"][0]["notes"][0] == (
        "GGUF Q4: 17 GB VRAM free, fp8 needs ~30 GB (GGUF ~16 GB).")

"""Hardening rows through the real app: broken characters are a 400 with the studio's
sentence, a phone-sized photo is used (and its result capped), readiness is unknown in
/healthz while ComfyUI is down, and a failed load counts no model swap. (The UI meets the
same check in `studio.run`: tests/unit/test_operations_jobs.py; gradio_client cannot even
send a lone surrogate.)"""

from __future__ import annotations

import base64
import io
import json
import time

import httpx
from PIL import Image, ImageDraw

from tests.matrix import inputs
from tests.matrix.conftest import MatrixStudio

BROKEN = "a lighthouse \ud83c"     # half of an emoji
SENTENCE = "contains a broken character (an unpaired surrogate); remove it."


def _post_json(studio: MatrixStudio, body: dict[str, object]) -> httpx.Response:
    # json.dumps writes the lone half as the escape "\ud83c", as a browser's JSON would.
    return httpx.post(studio.url + "/v1/images/generations", content=json.dumps(body),
                      headers={**studio.headers(), "Content-Type": "application/json"},
                      timeout=60)


def _cancelled(studio: MatrixStudio) -> float:
    text = httpx.get(studio.url + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("studio_job_errors_total") and 'kind="cancelled"' in line)


def test_a_lone_surrogate_is_a_400_on_the_api(studio: MatrixStudio) -> None:
    """Before: 500 "Internal error", and the job counted as cancelled."""
    before, cancelled = studio.fake.counters["prompts_posted"], _cancelled(studio)
    for field, what in (("prompt", "The prompt"), ("negative_prompt", "The negative prompt")):
        body: dict[str, object] = {"prompt": "a lighthouse", "size": "256x256", "steps": 1}
        body[field] = BROKEN
        response = _post_json(studio, body)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["message"] == f"{what} {SENTENCE}" and error["param"] == field
    assert studio.fake.counters["prompts_posted"] == before
    assert _cancelled(studio) == cancelled


def test_a_48_mp_photo_is_used_and_the_result_capped(studio: MatrixStudio) -> None:
    """Before: "The image is 8000×6000 = 48 MP; the limit is 40 MP." Now: used, the
    full-size result kept at 40 MP (STUDIO_MAX_RESULT_PIXELS), and the answer says so."""
    picture = inputs.bomb_png(8000, 6000)          # a 48 MP black PNG of a few KB
    mask = Image.new("L", (8000, 6000), 0)
    ImageDraw.Draw(mask).rectangle((3000, 2000, 3400, 2400), fill=255)
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    files = [("image", ("photo.png", picture, "image/png")),
             ("mask", ("mask.png", buffer.getvalue(), "image/png"))]
    response = studio.edit(files, timeout=120, model="qwen-image-inpaint")
    assert response.status_code == 200, response.text
    item = response.json()["data"][0]
    result = Image.open(io.BytesIO(base64.b64decode(item["b64_json"])))
    assert result.size == (7302, 5477)             # 40.0 MP, same shape
    assert any("results are at most 40 MP" in note for note in item["notes"]), item["notes"]


def _wait_online(studio: MatrixStudio) -> dict[str, object]:
    """The shared studio after earlier tests stopped or faulted the fake: back and connected."""
    deadline = time.monotonic() + 15
    while True:
        body: dict[str, object] = httpx.get(studio.url + "/healthz?fresh=1", timeout=30).json()
        comfy = body["comfyui"]
        assert isinstance(comfy, dict)
        if (comfy["reachable"] and comfy["websocket_connected"]) or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def test_healthz_says_readiness_is_unknown_while_comfyui_is_down(studio: MatrixStudio) -> None:
    """Before: every mode stayed "ready": true while ComfyUI was unreachable."""
    _wait_online(studio)
    studio.fake.stop()
    deadline = time.monotonic() + 15
    while True:
        response = httpx.get(studio.url + "/healthz", timeout=30)
        body = response.json()
        if not body["comfyui"]["reachable"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert response.status_code == 503
    assert all(mode["ready"] is None for mode in body["modes"].values()), body


def test_a_load_that_fails_counts_no_model_swap(studio: MatrixStudio) -> None:
    def swaps() -> float:
        text = httpx.get(studio.url + "/metrics", timeout=10).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("studio_model_swaps_total"))

    _wait_online(studio)
    # An empty node cache: a VAELoader cached from an earlier test would never run (and fail).
    httpx.post(studio.fake.url + "/free", json={"unload_models": True, "free_memory": True},
               timeout=10)
    assert studio.fake.wait_idle(10)
    studio.ctx.studio.forget_loaded()
    before = swaps()
    studio.fake.fail_at("VAELoader", "RuntimeError", "Error while deserializing header")
    for _ in range(2):
        assert studio.generate().status_code == 502
    assert swaps() == before
    assert studio.ctx.monitor.snapshot().loaded_file is None

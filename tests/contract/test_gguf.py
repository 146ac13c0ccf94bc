"""The GGUF templates and the fake's GGUF pack against the real server's answers
(fixtures/comfy/gguf/trace_gguf.json, recorded with ComfyUI-GGUF and empty model files).

- every `workflows/<mode>.gguf.json`, bound by the studio's binder with the GGUF file names,
  is accepted (200, no node_errors), and a wrong UNet file name gets the recorded 400 body;
- every recorded request replayed against the fake gets the same status and body, and the
  runs (whose loaders meet the recorded empty files) the same messages and error.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from backend.workflows import Template, TemplateLibrary, bind
from tests.fake.helpers import Socket, summarize
from tests.fake_comfy import FakeComfy

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
GGUF = ROOT / "tests" / "fixtures" / "comfy" / "gguf"
TRACE: list[dict[str, Any]] = json.loads((GGUF / "trace_gguf.json").read_text())
CASES = {case["name"]: case for case in TRACE}
MODES = ("generate", "edit", "multiref", "inpaint", "outpaint", "region_edit")

GEN_UNET = "qwen-image-2512-Q4_K_M.gguf"
EDIT_UNET = "qwen-image-edit-2511-Q4_K_M.gguf"
GGUF_CLIP = "Qwen2.5-VL-7B-Instruct-Q4_K_M.gguf"
FP8_CLIP = "qwen_2.5_vl_7b_fp8_scaled.safetensors"
VAE = "qwen_image_vae.safetensors"
WRONG_UNET = CASES["wrong_unet_name (not in list)"]
# The recording's model files were all empty placeholders (its README).
RECORDED_EMPTY_FILES = (GEN_UNET, EDIT_UNET, GGUF_CLIP, FP8_CLIP, VAE)
IMAGE_ROLES = ("image", "image1", "mask")


@pytest.fixture(scope="module")
def library() -> TemplateLibrary:
    return TemplateLibrary(WORKFLOWS)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeComfy]:
    fake = FakeComfy().start()
    png = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 180, 40)).save(png, "PNG")
    for role in IMAGE_ROLES:
        fake.put_input(f"{role}.png", png.getvalue(), subfolder="banana")
    try:
        yield fake
    finally:
        fake.close()


def values(template: Template, unet: str, clip: str = GGUF_CLIP) -> dict[str, dict[str, Any]]:
    """What a mode's operation binds: every role the template has, GGUF file names."""
    given: dict[str, dict[str, Any]] = {
        "unet": {"name": unet},
        "clip": {"name": clip},
        "vae": {"name": VAE},
        "prompt": {"text": "a ripe banana"},
        "negative": {"text": ""},
        "sampler": {"seed": 5, "steps": 3, "cfg": 2.5, "denoise": 1.0},
        "latent": {"width": 64, "height": 48, "batch": 1},
        "region": {"text": "the banana"},
        "grow": {"pixels": 4},
        "feather": {"pixels": 2},
        "pad": {"left": 0, "top": 0, "right": 16, "bottom": 0, "feathering": 0},
        **{role: {"file": f"banana/{role}.png"} for role in IMAGE_ROLES},
    }
    return {role: v for role, v in given.items() if role in template.roles}


def default_unet(mode: str) -> str:
    return GEN_UNET if mode == "generate" else EDIT_UNET


async def post(fake: FakeComfy, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=fake.url, timeout=10) as http:
        return await http.post("/prompt", json=body)


@pytest.mark.parametrize("mode", MODES)
def test_gguf_variant_loads_with_its_own_file_names(library: TemplateLibrary, mode: str) -> None:
    assert "gguf" in library.variants(mode)
    template = library.get(mode, "gguf")
    unet, clip = (template.graph[template.roles[r][0]] for r in ("unet", "clip"))
    assert (unet["class_type"], unet["inputs"]) == (
        "UnetLoaderGGUF", {"unet_name": default_unet(mode)})
    assert (clip["class_type"], clip["inputs"]) == (
        "CLIPLoaderGGUF", {"clip_name": GGUF_CLIP, "type": "qwen_image"})
    # Apart from the two loaders, the default template's graph.
    default = library.get(mode).graph
    loaders = set(template.roles["unet"]) | set(template.roles["clip"])
    assert {k: v for k, v in template.graph.items() if k not in loaders} == \
        {k: v for k, v in default.items() if k not in loaders}


def test_generate_gguf_is_the_recorded_accepted_graph(library: TemplateLibrary) -> None:
    recorded = CASES["gguf_unet+gguf_clip (valid)"]["request"]["prompt"]
    assert library.get("generate", "gguf").graph == recorded


@pytest.mark.parametrize("clip", [GGUF_CLIP, FP8_CLIP], ids=["gguf_clip", "fp8_clip"])
@pytest.mark.parametrize("mode", MODES)
async def test_bound_gguf_template_is_accepted(library: TemplateLibrary, fake: FakeComfy,
                                              mode: str, clip: str) -> None:
    template = library.get(mode, "gguf")
    graph = bind(template, values(template, default_unet(mode), clip), nonce="gguf1")
    response = await post(fake, {"prompt": graph, "client_id": "contract"})
    assert response.status_code == 200, response.text
    assert response.json()["node_errors"] == {}
    assert fake.wait_idle()
    prompt_id = response.json()["prompt_id"]
    assert fake.history(prompt_id)[prompt_id]["status"]["status_str"] == "success"


@pytest.mark.parametrize("mode", MODES)
async def test_wrong_unet_name_gets_the_recorded_error(library: TemplateLibrary,
                                                      fake: FakeComfy, mode: str) -> None:
    """The recorded 400 body, re-keyed to the template's UNet node. Region edit has a second
    output (the mask) that does not need the UNet: as ComfyUI does with a partly valid prompt
    (trace_runtime_error.json), that is a 200 carrying the same node_errors."""
    template = library.get(mode, "gguf")
    wrong = WRONG_UNET["request"]["prompt"]["1"]["inputs"]["unet_name"]
    graph = bind(template, values(template, wrong), nonce="gguf2")
    response = await post(fake, {"prompt": graph})
    got = response.json()
    (unet_id,) = template.roles["unet"]
    expected = copy.deepcopy(WRONG_UNET["body"])
    expected["node_errors"] = {unet_id: expected["node_errors"].pop("1")}
    expected["node_errors"][unet_id]["dependent_outputs"] = [template.output_roles["output"]]
    if mode == "region_edit":
        assert response.status_code == 200 and got["node_errors"] == expected["node_errors"]
        assert fake.wait_idle()
        return
    assert response.status_code == WRONG_UNET["status"] == 400
    assert got == expected
    if mode == "generate":                  # the recorded graph itself: ids and all
        assert got == WRONG_UNET["body"]


# --- the recorded requests, replayed ---------------------------------------------------------


@pytest.mark.parametrize("case", TRACE, ids=[case["name"] for case in TRACE])
async def test_recorded_request_gets_the_recorded_answer(fake_comfy: FakeComfy,
                                                         case: dict[str, Any]) -> None:
    fake = fake_comfy                       # fresh: nothing cached, as on the recorded server
    fake.set_empty_files(*RECORDED_EMPTY_FILES)
    frames = await _replay(fake, case)
    if "ws_events" not in case:
        return
    recorded = case["ws_events"]
    assert [summarize(f) for f in frames[:len(recorded)]] == [summarize(m) for m in recorded]
    error = json.loads(frames[len(recorded) - 1])["data"]
    want = recorded[-1]["data"]
    for key in ("node_id", "node_type", "executed", "exception_type", "exception_message",
                "current_inputs"):
        assert error[key] == want[key], key
    assert sorted(error["current_outputs"]) == sorted(want["current_outputs"])

    prompt_id = json.loads(frames[-1])["data"]["prompt_id"]
    entry = fake.history(prompt_id)[prompt_id]
    want_entry = next(iter(case["history"].values()))
    assert entry["prompt"][2:] == want_entry["prompt"][2:]      # graph, extra_data, outputs
    assert entry["status"]["status_str"] == want_entry["status"]["status_str"] == "error"
    assert [m[0] for m in entry["status"]["messages"]] == \
        [m[0] for m in want_entry["status"]["messages"]]
    assert entry["outputs"] == want_entry["outputs"] == {}


async def _replay(fake: FakeComfy, case: dict[str, Any]) -> list[str | bytes]:
    body = case["request"]
    client_id = body.get("client_id", "replay")
    async with Socket(fake.url, client_id) as ws:
        response = await post(fake, body)
        assert response.status_code == case["status"]
        got = response.json()
        if case["status"] != 200:
            assert got == case["body"]
            return ws.frames
        assert set(got) == set(case["body"]) and got["node_errors"] == case["body"]["node_errors"]
        await ws.until_done(got["prompt_id"])
        return ws.frames                                # from the greeting on

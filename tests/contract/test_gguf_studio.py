"""The studio's side of the GGUF variant, against the fake and the recorded answers
(fixtures/comfy/gguf/trace_gguf.json): each mode's operation, asked for `variant="gguf"`,
binds the STUDIO_MODEL_*_GGUF files (before issue 16 it bound the fp8 names, which the
GGUF loaders refuse with value_not_in_list), and preflight checks the variant where
ComfyUI lists its files (/models/unet_gguf, /models/clip_gguf).
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from backend.comfy import ComfyClient
from backend.modes import REGISTRY, WarmupInputs
from backend.preflight import check_modes
from backend.settings import ModelFiles, Settings
from backend.workflows import TemplateLibrary, bind
from tests.fake_comfy import FakeComfy

GGUF = Path(__file__).resolve().parents[1] / "fixtures" / "comfy" / "gguf"
CASES = {c["name"]: c for c in json.loads((GGUF / "trace_gguf.json").read_text())}
VALID = CASES["gguf_unet+gguf_clip (valid)"]
WRONG = CASES["wrong_unet_name (not in list)"]
MODES = ("generate", "edit", "multiref", "inpaint", "outpaint", "region_edit")
SETTINGS = Settings(max_sampling_pixels=128 * 128)


def bound(mode: str, settings: Settings = SETTINGS) -> tuple[dict[str, Any], str]:
    """The mode's warm-up request as a job binds it with the GGUF variant (placeholder
    uploads, as preflight does), and the template's #unet node id."""
    spec = REGISTRY.get(mode)
    library = TemplateLibrary(settings.workflows_dir)
    template = library.get(mode, "gguf", required=spec.roles)
    request = replace(spec.warmup(WarmupInputs.sample(64)), variant="gguf")
    prepared = spec.operation.prepare(request, settings)
    files = dict.fromkeys(prepared.uploads, "banana/p.png")
    (unet,) = template.roles["unet"]
    return bind(template, prepared.bindings(template.roles, files), nonce="g"), unet


async def post(fake: FakeComfy, graph: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=fake.url, timeout=10) as http:
        return await http.post("/prompt", json={"prompt": graph, "client_id": "c"})


@pytest.mark.parametrize("mode", MODES)
async def test_the_studio_binds_the_gguf_files_and_comfyui_accepts_them(
    fake_comfy: FakeComfy, mode: str
) -> None:
    fake_comfy.put_input("p.png", _png(), subfolder="banana")
    graph, unet = bound(mode)
    recorded = VALID["request"]["prompt"]
    assert graph[unet]["inputs"]["unet_name"] == (
        recorded["1"]["inputs"]["unet_name"] if mode == "generate"
        else "qwen-image-edit-2511-Q4_K_M.gguf")
    clip = next(n for n in graph.values() if n["class_type"] == "CLIPLoaderGGUF")
    assert clip["inputs"] == recorded["3"]["inputs"]
    response = await post(fake_comfy, graph)
    assert response.status_code == VALID["status"] == 200, response.text
    assert response.json()["node_errors"] == VALID["body"]["node_errors"] == {}
    assert fake_comfy.wait_idle()


async def test_a_wrong_gguf_setting_gets_the_recorded_400(fake_comfy: FakeComfy) -> None:
    wrong = WRONG["request"]["prompt"]["1"]["inputs"]["unet_name"]
    settings = replace(SETTINGS, models=ModelFiles(generate_gguf=wrong))
    graph, unet = bound("generate", settings)
    assert unet == "1"                        # the recorded graph's ids: the body is exact
    response = await post(fake_comfy, graph)
    assert response.status_code == WRONG["status"] == 400
    assert response.json() == WRONG["body"]


async def test_preflight_checks_the_gguf_variant_where_comfyui_lists_it(
    fake_comfy: FakeComfy,
) -> None:
    settings = Settings(comfy_url=fake_comfy.url)
    library = TemplateLibrary(settings.workflows_dir)
    async with _client(fake_comfy) as client:
        ready = await check_modes(client, library, settings, REGISTRY)
        assert {m for m, r in ready.items() if r.gguf_ready} == set(MODES), ready
        assert ready["remove_background"].gguf_ready is None
        fake_comfy.set_gguf(False)
        fake_comfy.reset_counters()
        ready = await check_modes(client, library, settings, REGISTRY)
    assert all(ready[m].ready and ready[m].gguf_ready is False for m in MODES)
    assert "UnetLoaderGGUF (ComfyUI-GGUF pack)" in ready["edit"].gguf_message
    # One listing per folder, however many modes and variants need it.
    assert fake_comfy.counters["requests"]["GET /models/{folder}"] == 5


async def test_preflight_names_a_missing_gguf_file_and_its_folder(fake_comfy: FakeComfy) -> None:
    fake_comfy.set_models("unet_gguf", ["qwen-image-2512-Q4_K_M.gguf"])
    settings = Settings(comfy_url=fake_comfy.url)
    async with _client(fake_comfy) as client:
        ready = await check_modes(client, TemplateLibrary(settings.workflows_dir), settings,
                                  REGISTRY)
    assert ready["generate"].gguf_ready is True
    assert ready["edit"].gguf_ready is False
    assert ready["edit"].gguf_message == (
        "missing model files: diffusion_models/qwen-image-edit-2511-Q4_K_M.gguf")


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 180, 40)).save(out, "PNG")
    return out.getvalue()


class _client:
    def __init__(self, fake: FakeComfy) -> None:
        self.client = ComfyClient(fake.url)

    async def __aenter__(self) -> ComfyClient:
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()


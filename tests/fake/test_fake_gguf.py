"""The ComfyUI-GGUF pack in the fake, against the recordings in fixtures/comfy/gguf/: its
classes, its model-list routes, what its loaders (and the core ones) list, and how its
loaders run: like the core ones, with their own VRAM; installed by default, optional."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fake.helpers import (
    FP8_CLIP,
    FP8_UNET,
    GGUF_CLIP,
    GGUF_EDIT_UNET,
    GGUF_UNET,
    qwen_generate,
    submit,
    trace,
)
from tests.fake_comfy import FakeComfy
from tests.fake_comfy.nodes.models import GGUF_UNET_GB, UNET_GB

SCHEMAS = trace("gguf/object_info_gguf.json")
ENDPOINTS = trace("gguf/models_endpoints.json")
CORE_CLIPLOADER = trace("gguf/object_info_CLIPLoader_core.json")
MISC = trace("trace_misc.json")


def _history(fake: FakeComfy, prompt_id: str) -> dict[str, Any]:
    assert fake.wait_idle()
    entry: dict[str, Any] = fake.history(prompt_id)[prompt_id]
    return entry


@pytest.mark.parametrize("key", list(ENDPOINTS))
async def test_model_routes_as_recorded(client: httpx.AsyncClient, key: str) -> None:
    recorded = ENDPOINTS[key]
    response = await client.get(key.split(" ", 1)[1])
    assert response.status_code == recorded["status"]
    if recorded["status"] == 200:
        assert response.headers["content-type"] == recorded["content_type"]
        assert response.json() == recorded["body"]
    else:
        assert response.content == b""


@pytest.mark.parametrize("name", list(SCHEMAS))
async def test_pack_classes_as_recorded(client: httpx.AsyncClient, name: str) -> None:
    response = await client.get(f"/object_info/{name}")
    assert response.json() == {name: SCHEMAS[name]}


async def test_core_loaders_never_list_gguf_files(client: httpx.AsyncClient) -> None:
    info = (await client.get("/object_info")).json()
    assert info["CLIPLoader"] == CORE_CLIPLOADER["CLIPLoader"]
    assert info["UNETLoader"]["input"]["required"]["unet_name"][0] == \
        ENDPOINTS["GET /models/diffusion_models"]["body"]


async def test_the_pack_is_optional(fake_comfy: FakeComfy, client: httpx.AsyncClient) -> None:
    fake_comfy.set_gguf(False)
    info = (await client.get("/object_info")).json()
    assert not set(SCHEMAS) & set(info) and len(info) == 560
    assert (await client.get("/models")).json() == MISC["GET /models"]["body"]
    missing = await client.get("/models/unet_gguf")
    assert (missing.status_code, missing.content) == (404, b"")
    response = await client.post("/prompt", json={"prompt": qwen_generate(GGUF_UNET)})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_prompt"
    assert "UnetLoaderGGUF does not exist" in response.json()["error"]["message"]

    assert (await client.post("/__fake__/packs", json={"gguf": True})).json() == {"gguf": True}
    paths = (await client.get("/internal/folder_paths")).json()
    assert paths["unet_gguf"] == paths["diffusion_models"]
    assert paths["clip_gguf"] == paths["text_encoders"]
    assert (await client.get("/models")).json() == ENDPOINTS["GET /models"]["body"]


async def test_lists_follow_the_folders(fake_comfy: FakeComfy, client: httpx.AsyncClient) -> None:
    fake_comfy.set_models("unet_gguf", [GGUF_EDIT_UNET])
    fake_comfy.set_models("text_encoders", ["b.safetensors", "A.safetensors"])
    info = (await client.get("/object_info")).json()
    assert info["UnetLoaderGGUFAdvanced"]["input"]["required"]["unet_name"][0] == [GGUF_EDIT_UNET]
    # Every text encoder, sorted (the pack's own listing).
    assert info["DualCLIPLoaderGGUF"]["input"]["required"]["clip_name2"][0] == [
        "A.safetensors", GGUF_CLIP, "b.safetensors"]
    response = await client.post("/prompt", json={"prompt": qwen_generate(GGUF_UNET)})
    error = response.json()["node_errors"]["1"]["errors"][0]
    assert (response.status_code, error["type"]) == (400, "value_not_in_list")


async def test_gguf_loaders_run_with_their_own_vram(fake_comfy: FakeComfy,
                                                    client: httpx.AsyncClient) -> None:
    answer = await submit(client, qwen_generate(GGUF_UNET, GGUF_CLIP))
    entry = _history(fake_comfy, answer["prompt_id"])
    assert entry["status"]["status_str"] == "success" and entry["outputs"]["9"]["images"]
    resident = {m["name"]: (m["folder"], m["vram_gb"])
                for m in fake_comfy.state()["memory"]["resident"]}
    assert resident[GGUF_UNET] == ("unet_gguf", GGUF_UNET_GB)
    assert resident[GGUF_CLIP][0] == "clip_gguf"
    assert round(UNET_GB - GGUF_UNET_GB, 6) == 10.0     # "~10 GB instead of ~20 per UNet"

    # CLIPLoaderGGUF also loads the fp8 safetensors encoder (from text_encoders); a GGUF UNet
    # and an fp8 one replace each other like any two diffusion models.
    answer = await submit(client, qwen_generate(FP8_UNET, FP8_CLIP, seed=2))
    assert _history(fake_comfy, answer["prompt_id"])["status"]["status_str"] == "success"
    graph = qwen_generate(GGUF_UNET, GGUF_CLIP, seed=3)
    graph["2"]["inputs"]["clip_name"] = FP8_CLIP
    answer = await submit(client, graph)
    assert _history(fake_comfy, answer["prompt_id"])["status"]["status_str"] == "success"
    assert GGUF_UNET in fake_comfy.resident_models and FP8_UNET not in fake_comfy.resident_models
    assert fake_comfy.counters["model_swaps"] == 2
    assert fake_comfy.counters["loads_by_model"][GGUF_UNET] == 2


@pytest.mark.parametrize("name, folder, error", [
    (GGUF_UNET, "unet", ("ValueError", "cannot mmap an empty file\n")),
    (GGUF_CLIP, "clip", ("ValueError", "cannot mmap an empty file\n")),
    (FP8_CLIP, "clip", ("safetensors._safetensors_rust.SafetensorError",
                        "Error while deserializing header: header too small\n")),
])
async def test_empty_model_files_fail_to_load_as_recorded(
        fake_comfy: FakeComfy, client: httpx.AsyncClient, name: str, folder: str,
        error: tuple[str, str]) -> None:
    response = await client.post("/__fake__/empty_files", json={"files": [name]})
    assert response.json() == [name]
    graph = {"1": {"class_type": "UnetLoaderGGUF", "inputs": {"unet_name": name}},
             "2": {"class_type": "ModelSave", "inputs": {"model": ["1", 0],
                                                         "filename_prefix": "probe"}}}
    if folder == "clip":
        graph = {"1": {"class_type": "CLIPLoaderGGUF",
                       "inputs": {"clip_name": name, "type": "qwen_image"}},
                 "2": {"class_type": "CLIPSave", "inputs": {"clip": ["1", 0],
                                                            "filename_prefix": "probe"}}}
    answer = await submit(client, graph)
    kind, data = _history(fake_comfy, answer["prompt_id"])["status"]["messages"][-1]
    assert (kind, data["node_id"], (data["exception_type"], data["exception_message"])) == (
        "execution_error", "1", error)
    fake_comfy.set_empty_files()
    answer = await submit(client, graph)
    assert _history(fake_comfy, answer["prompt_id"])["status"]["status_str"] == "success"

"""The fake's HTTP answers against every recorded exchange: uploads, /view, misc routes."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.fake.helpers import CAPTURE_GRAPH, png_bytes, trace, upload
from tests.fake_comfy import FakeComfy

UPLOADS = trace("trace_upload.json")["entries"]
VIEWS = trace("trace_view.json")["entries"]
MISC = trace("trace_misc.json")


def _same_headers(response: httpx.Response, recorded: dict[str, Any]) -> None:
    for name in ("Content-Type",):
        assert response.headers.get(name) == recorded["headers"].get(name), name
    if recorded["headers"].get("Content-Length") == "0":
        assert response.content == b""


def _check(response: httpx.Response, recorded: dict[str, Any]) -> None:
    assert response.status_code == recorded["status"], (recorded.get("case"), response.text)
    _same_headers(response, recorded)
    if "body" in recorded:
        assert response.json() == recorded["body"]
    elif "body_text" in recorded and not recorded["headers"].get("Content-Type", "").startswith(
            "image/"):
        assert response.text == recorded["body_text"]


async def test_upload_cases_in_recorded_order(fake_comfy: FakeComfy,
                                              client: httpx.AsyncClient) -> None:
    src = png_bytes((40, 30), (10, 20, 30))
    rgba = png_bytes((40, 30), (10, 20, 30, 128), "RGBA")
    ref = json.dumps({"filename": "cap_rgba.png", "subfolder": "", "type": "input"})
    missing_ref = json.dumps({"filename": "nope.png", "subfolder": "", "type": "input"})
    mask = png_bytes((40, 30), (0, 0, 0, 0), "RGBA")

    async def mask_upload(name: str, **form: str) -> httpx.Response:
        return await client.post("/upload/mask", files={"image": (name, mask, "image/png")},
                                  data={"type": "input", **form})

    responses = [
        await upload(client, "cap_src.png", src, type="input"),
        await upload(client, "cap_src.png", src, type="input"),
        await upload(client, "cap_src.png", png_bytes((40, 30), (1, 2, 3)), type="input"),
        await upload(client, "cap_src.png", png_bytes((40, 30), (4, 5, 6)), type="input"),
        await upload(client, "cap_ow.png", png_bytes((8, 8), (1, 1, 1)), overwrite="true"),
        await upload(client, "cap_ow.png", png_bytes((8, 8), (2, 2, 2)), overwrite="true"),
        await upload(client, "cap_sub.png", src, subfolder="capsub", type="input"),
        await upload(client, "cap_tmp.png", src, type="temp"),
        await upload(client, "cap_notype.png", src),
        await client.post("/upload/image", data={"type": "input"}),
        await upload(client, "cap_rgba.png", rgba),
        await mask_upload("cap_mask.png", original_ref=ref),
        await mask_upload("cap_mask2.png"),
        await mask_upload("cap_mask3.png", original_ref=missing_ref),
    ]
    assert len(responses) == len(UPLOADS)
    for response, recorded in zip(responses, UPLOADS, strict=True):
        _check(response, recorded)

    inputs = fake_comfy.input_dir
    assert (inputs / "cap_ow.png").read_bytes() == png_bytes((8, 8), (2, 2, 2))
    assert (inputs / "capsub" / "cap_sub.png").is_file()
    assert (fake_comfy.temp_dir / "cap_tmp.png").is_file()
    assert not (inputs / "cap_mask3.png").exists()           # 200, but nothing written
    with Image.open(inputs / "cap_mask.png") as masked:
        assert masked.mode == "RGBA" and masked.getpixel((0, 0)) == (10, 20, 30, 0)


async def test_view_cases(client: httpx.AsyncClient) -> None:
    await upload(client, "cap_src.png", png_bytes((64, 48), (10, 20, 30)))
    await upload(client, "cap_sub.png", png_bytes((64, 48)), subfolder="capsub")
    for recorded in VIEWS:
        response = await client.get(recorded["request"]["path"])
        _check(response, recorded)
        assert response.headers.get("Content-Disposition") == recorded["headers"].get(
            "Content-Disposition")
    alpha = await client.get("/view", params={"filename": "cap_src.png", "type": "input",
                                              "channel": "a"})
    with Image.open(io.BytesIO(alpha.content)) as img:
        assert img.mode == "RGBA" and img.getpixel((0, 0))[3] == 255
    jpeg = await client.get("/view", params={"filename": "cap_src.png", "type": "input",
                                             "preview": "jpeg;50"})
    assert jpeg.headers["Content-Type"] == "image/jpeg" and jpeg.content[:2] == b"\xff\xd8"
    rgb = await client.get("/api/view", params={"filename": "cap_src.png", "type": "input",
                                                "channel": "rgb"})
    assert rgb.status_code == 200 and rgb.content[:8] == b"\x89PNG\r\n\x1a\n"


async def test_view_serves_saved_outputs(fake_comfy: FakeComfy, client: httpx.AsyncClient) -> None:
    await upload(client, "cap_src.png", png_bytes((64, 48)))
    await client.post("/prompt", json={"prompt": CAPTURE_GRAPH})
    assert fake_comfy.wait_idle()
    response = await client.get("/view", params={"filename": "capture_00001_.png",
                                                 "type": "output", "subfolder": ""})
    assert response.status_code == 200
    with Image.open(io.BytesIO(response.content)) as saved:
        assert saved.size == (128, 96)
        assert json.loads(saved.text["prompt"]) == CAPTURE_GRAPH


@pytest.mark.parametrize("key", [
    "GET /embeddings", "GET /models", "GET /models/checkpoints", "GET /models/nonexistent_folder",
    "GET /features", "GET /prompt", "GET /settings", "GET /users", "GET /experiment/models",
    "GET /internal/folder_paths", "GET /object_info/NoSuchNode", "GET /node_replacements",
    "POST /free", "POST /history clear false delete []",
])
async def test_misc_routes_as_recorded(fake_comfy: FakeComfy, client: httpx.AsyncClient,
                                       key: str) -> None:
    fake_comfy.set_gguf(False)          # the server of trace_misc had no GGUF pack
    recorded = MISC[key]
    request = recorded["request"]
    response = await client.request(request["method"], request["path"], json=request.get("json"))
    _check(response, recorded)


async def test_model_folders_and_system_stats(fake_comfy: FakeComfy,
                                              client: httpx.AsyncClient) -> None:
    fake_comfy.set_models("vae", ["fake.safetensors", "garbage.safetensors"])
    assert (await client.get("/models/vae")).json() == MISC["GET /models/vae"]["body"]
    unet = (await client.get("/models/diffusion_models")).json()
    assert "qwen_image_edit_2511_fp8mixed.safetensors" in unet

    stats = (await client.get("/system_stats")).json()
    recorded = MISC["GET /system_stats"]["body"]
    assert set(stats) == set(recorded)
    assert set(stats["system"]) == set(recorded["system"])
    assert stats["system"]["comfyui_version"] == "0.3.64"
    (device,) = stats["devices"]
    assert set(device) == set(recorded["devices"][0])
    assert device["type"] == "cuda" and device["vram_total"] == 48 * 1024**3
    for path in ("/extensions", "/i18n", "/workflow_templates", "/internal/logs/raw"):
        response = await client.get(path)
        assert response.status_code == 200
        summary = MISC[f"GET {path}"]["body_summary"]
        body = response.json()
        assert (list(body) if isinstance(body, dict) else body) == summary


async def test_every_route_also_under_api(client: httpx.AsyncClient) -> None:
    await upload(client, "cap_src.png", png_bytes())
    for path, check in MISC["api_prefix_check"].items():
        if path.startswith(("POST", "WS")):
            continue
        plain, api = await client.get(path), await client.get(f"/api{path}")
        assert (plain.status_code, api.status_code) == (check["plain_status"], check["api_status"])
        if check["same_body"]:
            assert plain.content == api.content, path
    response = await upload(client, "cap_api.png", png_bytes((3, 3)))
    api_upload = await client.post("/api/upload/image",
                                   files={"image": ("cap_api2.png", png_bytes((3, 3)))})
    assert response.json()["name"] == "cap_api.png" and api_upload.status_code == 200


async def test_object_info_lists_folders_and_uploads(fake_comfy: FakeComfy,
                                                     client: httpx.AsyncClient) -> None:
    info = (await client.get("/object_info")).json()
    assert len(info) == 560 + 6                 # the recorded server's classes + the GGUF pack's
    assert info["UNETLoader"]["input"]["required"]["unet_name"][0] == [
        "qwen_image_2512_fp8_e4m3fn.safetensors",
        "qwen_image_2512_fp8_e4m3fn_scaled_comfyui_4steps_v1.0.safetensors",
        "qwen_image_edit_2511_fp8mixed.safetensors"]
    assert info["CLIPLoader"]["input"]["required"]["clip_name"][0] == [
        "qwen_2.5_vl_7b_fp8_scaled.safetensors"]
    assert info["VAELoader"]["input"]["required"]["vae_name"] == [
        ["qwen_image_vae.safetensors", "pixel_space"]]
    assert info["LoadImage"]["input"]["required"]["image"] == [[], {"image_upload": True}]

    await upload(client, "b.png", png_bytes())
    await upload(client, "a.png", png_bytes((2, 2)))
    await upload(client, "deep.png", png_bytes(), subfolder="sub")
    fake_comfy.set_models("loras", ["x.safetensors"])
    fake_comfy.set_models("upscale_models", ["4x.pth"])
    fake_comfy.hide_classes("Florence2Run", "Sam2Segmentation")
    info = (await client.get("/api/object_info")).json()
    assert info["LoadImage"]["input"]["required"]["image"][0] == ["a.png", "b.png"]
    assert info["LoraLoaderModelOnly"]["input"]["required"]["lora_name"] == [["x.safetensors"]]
    assert info["UpscaleModelLoader"]["input"]["required"]["model_name"][1]["options"] == ["4x.pth"]
    assert "Florence2Run" not in info and "Sam2Segmentation" not in info
    assert (await client.get("/object_info/Florence2Run")).json() == {}
    one = (await client.get("/object_info/ImageInvert")).json()
    assert one == {"ImageInvert": info["ImageInvert"]}


async def test_prompt_errors_like_the_real_server(fake_comfy: FakeComfy,
                                                  client: httpx.AsyncClient) -> None:
    invalid = {e["case"]: e for e in trace("trace_prompt_invalid.json")["entries"]}
    non_json = invalid.pop("non-JSON body")
    response = await client.post("/prompt", content=b"{not json",
                                 headers={"Content-Type": "application/json"})
    _check(response, non_json)
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"

    await upload(client, "cap_src.png", png_bytes())
    for folder in fake_comfy.config.models:      # recorded with empty model folders
        fake_comfy.set_models(folder, [])
    for case, entry in invalid.items():
        response = await client.post("/prompt", json=entry["request"]["json"])
        _check(response, entry)
        assert response.headers["Content-Type"] == entry["headers"]["Content-Type"], case

    fake_comfy.hide_classes("ImageInvert")
    response = await client.post("/prompt", json={"prompt": CAPTURE_GRAPH})
    assert response.json()["error"]["message"] == (
        "Cannot execute because node ImageInvert does not exist.")
    fake_comfy.show_classes()
    fake_comfy.set_models("vae", [])
    graph = {
        "1": {"class_type": "VAELoader", "inputs": {"vae_name": "qwen_image_vae.safetensors"}},
        "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64,
                                                           "batch_size": 1}},
        "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "x"}},
    }
    response = await client.post("/prompt", json={"prompt": graph})
    (error,) = response.json()["node_errors"]["1"]["errors"]
    assert error["details"] == "vae_name: 'qwen_image_vae.safetensors' not in ['pixel_space']"
    counters = fake_comfy.counters
    assert counters["prompts_rejected"] == counters["prompts_posted"] == len(invalid) + 2

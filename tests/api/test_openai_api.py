"""The OpenAI-style API through the real app and the official `openai` SDK, over the fake."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI
from PIL import Image

from tests.api.conftest import API_KEY, auth, picture, png_bytes


@pytest.fixture
def client(studio) -> OpenAI:
    return OpenAI(base_url=studio.v1, api_key=API_KEY, max_retries=0, timeout=60)


def decode(b64: str) -> Image.Image:
    data = base64.b64decode(b64)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def named(image: Image.Image, name: str) -> tuple[str, bytes, str]:
    return (name, png_bytes(image), "image/png")


# --- success paths -------------------------------------------------------------------------


def test_models_list(client):
    ids = [m.id for m in client.models.list()]
    assert ids[0] == "qwen-image"
    for expected in ("qwen-image-turbo", "qwen-image-edit", "qwen-image-multiref",
                     "qwen-image-inpaint", "qwen-image-outpaint", "qwen-image-region-edit",
                     "qwen-image-remove-background"):
        assert expected in ids


def test_generate_n_images_with_seeds(client, studio):
    result = client.images.generate(
        model="qwen-image", prompt="a lighthouse at dawn", size="256x256", n=2,
        extra_body={"seed": 41, "steps": 2, "negative_prompt": "blurry"},
    )
    images = [decode(item.b64_json) for item in result.data]
    assert [im.size for im in images] == [(256, 256), (256, 256)]
    assert [item.model_extra["seed"] for item in result.data] == [41, 42]
    assert not np.array_equal(np.asarray(images[0]), np.asarray(images[1]))
    assert studio.fake.counters["prompts_executed"] >= 2


def test_generate_turbo_uses_the_turbo_template(client, studio):
    before = dict(studio.fake.counters["loads_by_model"])
    result = client.images.generate(model="qwen-image-turbo", prompt="a cat", size="256x256")
    assert decode(result.data[0].b64_json).size == (256, 256)
    loads = studio.fake.counters["loads_by_model"]
    turbo = studio.settings.models.generate_turbo_unet
    assert loads.get(turbo, 0) >= before.get(turbo, 0)   # loaded now, or still resident
    assert turbo in studio.fake.resident_models


def test_edit_one_image(client):
    result = client.images.edit(
        model="qwen-image-edit", image=named(picture(), "in.png"), prompt="make it night",
        extra_body={"steps": 2, "seed": 3},
    )
    out = decode(result.data[0].b64_json)
    assert out.width > 0 and out.mode in ("RGB", "RGBA")


def test_inpaint_through_an_openai_mask_keeps_everything_else(client):
    source = picture((320, 240))
    mask = Image.new("RGBA", source.size, (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (100, 80, 180, 160))          # transparent = repaint here
    result = client.images.edit(
        image=named(source, "room.png"), mask=named(mask, "mask.png"),
        prompt="a green armchair", extra_body={"steps": 2, "seed": 1},
    )
    out = np.asarray(decode(result.data[0].b64_json).convert("RGB")).astype(int)
    src = np.asarray(source).astype(int)
    assert out.shape == src.shape
    keep = np.ones(src.shape[:2], bool)
    keep[60:180, 80:200] = False                           # the hole plus grow/feather margin
    assert np.array_equal(out[keep], src[keep])            # untouched pixels come back exact
    assert np.abs(out[100:160, 120:160] - src[100:160, 120:160]).sum() > 0


def test_multiref_with_two_images(client):
    result = client.images.edit(
        model="qwen-image-multiref",
        image=[named(picture(), "a.png"), named(Image.new("RGB", (200, 200), "red"), "b.png")],
        prompt="the stripes on the red square", extra_body={"steps": 2},
    )
    assert len(result.data) == 1 and decode(result.data[0].b64_json).width > 0


def test_outpaint_and_remove_background_over_plain_multipart(studio):
    source = png_bytes(picture((256, 256)))
    response = httpx.post(
        studio.v1 + "/images/edits", headers=auth(), timeout=60,
        files={"image": ("a.png", source, "image/png")},
        data={"model": "qwen-image-outpaint", "pad_right": "128", "prompt": "more stripes",
              "steps": "2"},
    )
    assert response.status_code == 200, response.text
    out = decode(response.json()["data"][0]["b64_json"])
    assert out.size == (384, 256)

    response = httpx.post(
        studio.v1 + "/images/edits", headers=auth(), timeout=60,
        files={"image": ("a.png", source, "image/png")},
        data={"model": "qwen-image-remove-background"},
    )
    assert response.status_code == 200, response.text
    assert decode(response.json()["data"][0]["b64_json"]).mode == "RGBA"


def test_region_edit(studio):
    response = httpx.post(
        studio.v1 + "/images/edits", headers=auth(), timeout=60,
        files={"image": ("a.png", png_bytes(picture()), "image/png")},
        data={"model": "qwen-image-region-edit", "region": "the yellow stripes",
              "prompt": "make them green", "steps": "2"},
    )
    assert response.status_code == 200, response.text
    assert decode(response.json()["data"][0]["b64_json"]).size == (320, 240)


# --- errors ----------------------------------------------------------------------------------


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert "Traceback" not in body["error"]["message"]
    return body["error"]


def test_bad_size_is_a_400_the_sdk_understands(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.images.generate(model="qwen-image", prompt="x", size="1000x1000")
    assert err.value.status_code == 400
    assert err.value.body["param"] == "size"
    assert "multiple of 16" in err.value.body["message"]


def test_url_response_format_is_refused(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.images.generate(prompt="x", size="256x256", response_format="url")
    assert "only b64_json" in err.value.body["message"].lower()


def test_invalid_inputs(studio):
    url = studio.v1 + "/images/generations"
    cases = [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x", "n": 9}, "n"),
        ({"prompt": "x", "model": "dall-e-3"}, "model"),
        ({"prompt": "x", "size": "256x256", "steps": 0}, "steps"),
        ({"prompt": "x", "size": "4096x4096"}, "size"),
    ]
    for body, param in cases:
        response = httpx.post(url, json=body, headers=auth(), timeout=30)
        assert response.status_code == 400, body
        assert error_of(response)["param"] == param
    response = httpx.post(url, content=b"{not json", headers=auth(), timeout=30)
    assert response.status_code == 400 and error_of(response)["code"] == "invalid_json"
    response = httpx.post(studio.v1 + "/images/edits", headers=auth(), timeout=30,
                          files={"image": ("x.png", b"not a picture", "image/png")},
                          data={"prompt": "x"})
    assert response.status_code == 400 and error_of(response)["param"] == "image"


def test_api_key_required(studio):
    url = studio.v1 + "/models"
    missing = httpx.get(url, timeout=10)
    assert missing.status_code == 401 and error_of(missing)["code"] == "missing_api_key"
    wrong = httpx.get(url, headers=auth("sk-wrong"), timeout=10)
    assert wrong.status_code == 401 and error_of(wrong)["code"] == "invalid_api_key"
    assert httpx.get(url, headers=auth(), timeout=10).status_code == 200
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=studio.v1, api_key="sk-wrong", max_retries=0).images.generate(
            prompt="x", size="256x256"
        )
    # Probes stay open.
    assert httpx.get(studio.url + "/healthz", timeout=10).status_code == 200


def test_upload_over_the_limit_is_413(studio):
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * (studio.settings.max_upload_bytes + 10)
    response = httpx.post(studio.v1 + "/images/edits", headers=auth(), timeout=30,
                          files={"image": ("big.png", big, "image/png")}, data={"prompt": "x"})
    assert response.status_code == 413
    assert error_of(response)["code"] in ("file_too_large", "request_too_large")


def generate(studio, **extra) -> httpx.Response:
    body = {"prompt": "a test", "size": "256x256", "steps": 2, **extra}
    return httpx.post(studio.v1 + "/images/generations", json=body, headers=auth(), timeout=60)


def test_comfyui_down_is_503_then_recovers(studio):
    studio.fake.stop()
    response = generate(studio)
    assert response.status_code == 503
    error = error_of(response)
    assert error["code"] == "comfyui_unreachable"
    assert response.headers["x-should-retry"] == "true"
    assert str(studio.fake.config.port) not in error["message"]    # never ComfyUI's address
    studio.fake.start()
    assert generate(studio).status_code == 200


def test_missing_model_is_424_naming_the_file(studio):
    studio.fake.set_models("diffusion_models", [])
    response = generate(studio)
    assert response.status_code == 424
    error = error_of(response)
    assert error["code"] == "missing_models"
    assert studio.settings.models.generate_unet in error["message"]


def test_execution_error_is_502(studio):
    studio.fake.fail_at("KSampler", "RuntimeError", "Simulated sampler failure", times=1)
    response = generate(studio)
    assert response.status_code == 502
    assert error_of(response)["code"] == "execution_failed"
    assert response.headers["x-should-retry"] == "false"


def test_out_of_memory_is_507_with_the_remedies_in_order(studio):
    studio.fake.oom_at("KSampler", times=1)
    response = generate(studio)
    assert response.status_code == 507
    message = error_of(response)["message"]
    # This device's remedies (issue 16), in the guide's order.
    order = ["Free VRAM now", "lower the resolution", "one job at a time", "other services",
             "another GPU", "GGUF"]
    positions = [message.find(needle) for needle in order]
    assert -1 not in positions and positions == sorted(positions), message
    assert response.headers["x-should-retry"] == "false"


def test_missing_node_pack_is_424(studio):
    studio.fake.hide_classes("BiRefNetRMBG")
    response = httpx.post(studio.v1 + "/images/edits", headers=auth(), timeout=60,
                          files={"image": ("a.png", png_bytes(picture()), "image/png")},
                          data={"model": "qwen-image-remove-background"})
    assert response.status_code == 424        # was 502 comfyui_rejected (issue 10 #15)
    error = error_of(response)
    assert error["code"] == "missing_models"
    assert "BiRefNetRMBG" in error["message"] and "ComfyUI-RMBG" in error["message"]
    assert response.headers["x-should-retry"] == "false"


# --- saved styles (issue 14 item 4) ----------------------------------------------------------


def test_style_is_appended_and_a_users_new_style_works_without_a_restart(studio):
    import json as _json

    from backend.prompts import load_styles

    (studio.settings.library.data_dir / "styles.json").write_text(
        _json.dumps([{"name": "Banana", "prompt": "banana yellow palette", "negative": "blue"}]))
    photo = load_styles(studio.settings.library.data_dir).get("Photo")
    for style, added, negative in (("Photo", photo.prompt, photo.negative),
                                   ("Banana", "banana yellow palette", "blue")):
        response = httpx.post(studio.v1 + "/images/generations", headers=auth(), timeout=60,
                              json={"prompt": "a lighthouse", "size": "256x256", "steps": 2,
                                    "style": style})
        assert response.status_code == 200, response.text
        item_id = response.json()["data"][0]["id"]
        data_dir = studio.settings.library.data_dir
        (saved,) = data_dir.glob(f"library/*/{item_id}/*.png")    # the result, as kept
        params = _json.loads(Image.open(saved).info["parameters"])
        assert params["prompt"] == f"a lighthouse, {added}"
        assert params["negative_prompt"] == negative
    response = httpx.post(
        studio.v1 + "/images/edits", headers=auth(), timeout=60,
        files={"image": named(picture(), "p.png")},
        data={"prompt": "make it blue", "style": "Photo", "steps": "2"},
    )
    assert response.status_code == 200, response.text


def test_an_unknown_style_is_a_400_with_a_sentence(studio):
    response = httpx.post(studio.v1 + "/images/generations", headers=auth(), timeout=60,
                          json={"prompt": "a lighthouse", "size": "256x256", "style": "Nope"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "style"
    assert error["message"].startswith("There is no style named 'Nope'; the styles are: Photo")

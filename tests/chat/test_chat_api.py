"""`POST /v1/chat/completions` over the fake ComfyUI: the `openai` SDK's three-turn conversation
(generate → "make it night" → "remove the background"), whole and streamed; keep-alives while a
job runs; a hang-up stops the job; help answers in text; remote URLs, wrong models and server
failures in OpenAI's shape; aliases on every /v1 route; the optional LLM router."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI
from PIL import Image

from backend.api import chat
from backend.api.aliases import ModelAliases
from backend.api.auth import api_who
from backend.api.running import item_id_in
from tests.api.conftest import (
    API_KEY,
    api_app,
    auth,
    free_port,
    on_loop,
    serve,
    studio_settings,
)
from tests.fake_comfy import FakeComfy
from tests.fake_comfy.state import DEFAULT_MODELS
from tests.fake_llm import FakeLlm
from tests.matrix.surfaces import loaded_images

OWNER = api_who(API_KEY, "chat").owner
ALIASES = "gpt-4o=qwen-image-chat,dall-e-3=qwen-image"


class ChatStudio:
    def __init__(self, url: str, app: Any, fake: FakeComfy) -> None:
        self.url, self.app, self.fake = url, app, fake

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    def item(self, item_id: str | None) -> Any:
        assert item_id is not None
        ctx = self.app.state.studio_context
        return on_loop(self.app, ctx.library.get(OWNER, item_id))

    def post(self, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
        return httpx.post(self.v1 + "/chat/completions", json=body, headers=auth(),
                          timeout=60, **kwargs)


def start(fake: FakeComfy, **context_options: Any) -> tuple[ChatStudio, Any, Any]:
    application = api_app(studio_settings(fake), **context_options)
    port = free_port()
    server, thread = serve(application, port)
    return ChatStudio(f"http://127.0.0.1:{port}", application, fake), server, thread


@pytest.fixture(scope="module")
def module_fake() -> Iterator[FakeComfy]:
    fake = FakeComfy().start()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture(scope="module")
def studio(module_fake: FakeComfy) -> Iterator[ChatStudio]:
    running, server, thread = start(module_fake, env={"STUDIO_MODEL_ALIASES": ALIASES})
    try:
        yield running
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(autouse=True)
def clean_fake(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "module_fake" not in request.fixturenames:
        return
    fake: FakeComfy = request.getfixturevalue("module_fake")
    if not fake.running:
        fake.start()
    fake.clear_faults()
    fake.set_delays(step=0.0, load=0.0, node=0.0)
    for folder, files in DEFAULT_MODELS.items():
        fake.set_models(folder, files)
    fake.wait_idle(10)


@pytest.fixture
def client(studio: ChatStudio) -> OpenAI:
    return OpenAI(base_url=studio.v1, api_key=API_KEY, max_retries=0, timeout=60)


def png_of(data_url: str) -> bytes:
    header, _, payload = data_url.partition(",")
    assert header == "data:image/png;base64"
    return base64.b64decode(payload)


def picture(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def same_picture(a: Image.Image, b: Image.Image) -> bool:
    """The same pixels, allowing the studio's resampling to the model's working size."""
    a = a.convert("RGB")
    b = b.convert("RGB").resize(a.size, Image.Resampling.BILINEAR)
    diff = np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16))
    return float(diff.mean()) < 3.0


def uploaded(fake: FakeComfy) -> Image.Image:
    (image,) = loaded_images(fake).values()
    return image


TURNS = ("a red fox in the snow", "make it night", "remove the background")


def check_conversation(studio: ChatStudio, replies: list[tuple[str, list[str]]],
                       uploads: list[Image.Image | None]) -> None:
    """Three images: the second an edit of the first, the third a transparent PNG of the
    second; each kept in the library with its parent."""
    pngs = []
    for content, images in replies:
        assert len(images) == 1 and f"]({images[0]})" in content   # markdown + message.images
        pngs.append(png_of(images[0]))
    first, second, third = (picture(p) for p in pngs)
    assert uploads[0] is None
    assert uploads[1] is not None and same_picture(uploads[1], first)   # edited the first
    assert uploads[2] is not None and same_picture(uploads[2], second)  # cut out the second
    assert third.mode == "RGBA"                                         # transparent PNG
    assert replies[0][0].startswith("Generated")
    assert replies[1][0].startswith("Edited the image")
    assert replies[2][0].startswith("Removed the background")
    ids = [item_id_in(p) for p in pngs]
    items = [studio.item(i) for i in ids]
    assert [it.mode for it in items] == ["generate", "edit", "remove_background"]
    assert {it.surface for it in items} == {"chat"}
    assert [it.parent_id for it in items] == [None, ids[0], ids[1]]


def test_sdk_three_turn_conversation(studio: ChatStudio, client: OpenAI) -> None:
    messages: list[Any] = []
    replies: list[tuple[str, list[str]]] = []
    uploads: list[Image.Image | None] = []
    for text in TURNS:
        messages.append({"role": "user", "content": text})
        before = studio.fake.counters["prompts_executed"]
        answer = client.chat.completions.create(model="qwen-image-chat", messages=messages)
        assert studio.fake.counters["prompts_executed"] == before + 1
        message = answer.choices[0].message
        images = [part["image_url"]["url"] for part in message.model_extra["images"]]
        assert message.content is not None
        replies.append((message.content, images))
        uploads.append(uploaded(studio.fake) if text != TURNS[0] else None)
        messages.append({"role": "assistant", "content": message.content,
                         "images": message.model_extra["images"]})
    check_conversation(studio, replies, uploads)


def test_sdk_three_turn_conversation_streamed(studio: ChatStudio, client: OpenAI) -> None:
    messages: list[Any] = []
    replies: list[tuple[str, list[str]]] = []
    uploads: list[Image.Image | None] = []
    for text in TURNS:
        messages.append({"role": "user", "content": text})
        stream = client.chat.completions.create(model="qwen-image-chat", messages=messages,
                                                stream=True)
        chunks = list(stream)
        assert chunks[0].choices[0].delta.role == "assistant"
        assert chunks[-1].choices[0].finish_reason == "stop"
        content = "".join(c.choices[0].delta.content or "" for c in chunks)
        parts = [p for c in chunks for p in (c.choices[0].delta.model_extra or {}).get(
            "images", [])]
        replies.append((content, [p["image_url"]["url"] for p in parts]))
        uploads.append(uploaded(studio.fake) if text != TURNS[0] else None)
        messages.append({"role": "assistant", "content": content})   # markdown image only
    check_conversation(studio, replies, uploads)


def sse_lines(response: httpx.Response) -> Iterator[tuple[float, str]]:
    started = time.monotonic()
    for line in response.iter_lines():
        if line:
            yield time.monotonic() - started, line


def test_streaming_sends_the_role_at_once_and_keep_alives_while_the_job_runs(
    studio: ChatStudio, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chat, "KEEP_ALIVE_S", 0.1)
    studio.fake.set_delays(step=0.05)          # 20 steps: about a second
    body = {"model": "qwen-image-chat", "stream": True,
            "messages": [{"role": "user", "content": "a lighthouse"}]}
    with httpx.stream("POST", studio.v1 + "/chat/completions", json=body, headers=auth(),
                      timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for _t, line in sse_lines(response)]
    first = json.loads(lines[0].removeprefix("data: "))
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    content_at = next(i for i, line in enumerate(lines) if '"images"' in line)
    keep_alives = [i for i, line in enumerate(lines) if line == ": keep-alive"]
    assert keep_alives and all(0 < i < content_at for i in keep_alives)
    assert lines[-1] == "data: [DONE]"


def test_a_client_that_hangs_up_mid_stream_stops_the_job(studio: ChatStudio) -> None:
    fake = studio.fake
    fake.set_delays(step=0.1)
    before = fake.counters["interrupts"]
    httpx.get(studio.url + "/healthz?fresh=1", timeout=30)
    body = {"model": "qwen-image-chat", "stream": True,
            "messages": [{"role": "user", "content": "a slow lighthouse"}]}
    with httpx.stream("POST", studio.v1 + "/chat/completions", json=body, headers=auth(),
                      timeout=60) as response:
        for _line in response.iter_lines():
            break                          # the role chunk; then the client goes away
        deadline = time.monotonic() + 5
        while fake.counters["prompts_posted"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)                    # sampling now
    deadline = time.monotonic() + 10
    while fake.counters["interrupts"] == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.counters["interrupts"] > before, "ComfyUI was never told to stop"


def test_help_is_text_without_a_job(studio: ChatStudio) -> None:
    before = studio.fake.counters["prompts_posted"]
    response = studio.post({"model": "qwen-image-chat",
                            "messages": [{"role": "user", "content": "what can you do?"}]})
    assert response.status_code == 200, response.text
    message = response.json()["choices"][0]["message"]
    assert "remove the background" in message["content"] and "images" not in message
    assert studio.fake.counters["prompts_posted"] == before


def test_healthcheck_gets_a_tiny_image(studio: ChatStudio) -> None:
    response = studio.post({"model": "protolabs/qwen-image-chat",
                            "messages": [{"role": "user", "content": "healthcheck"}]})
    assert response.status_code == 200, response.text
    (part,) = response.json()["choices"][0]["message"]["images"]
    assert picture(png_of(part["image_url"]["url"])).size == (256, 256)


def test_a_form_encoded_body_is_read_as_json(studio: ChatStudio) -> None:
    """The guide's probe uses `curl -d`, which declares application/x-www-form-urlencoded."""
    body = json.dumps({"model": "qwen-image-chat",
                       "messages": [{"role": "user", "content": "help"}]})
    response = httpx.post(studio.v1 + "/chat/completions", content=body, timeout=30,
                          headers={**auth(),
                                   "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"]


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_a_remote_image_url_is_a_400(studio: ChatStudio) -> None:
    response = studio.post({"model": "qwen-image-chat", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "make it night"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]})
    assert response.status_code == 400
    error = error_of(response)
    assert "fetches nothing from URLs" in error["message"] and "image_url" in error["param"]


def test_an_unreadable_image_is_a_400(studio: ChatStudio) -> None:
    junk = "data:image/png;base64," + base64.b64encode(b"not a picture at all").decode()
    response = studio.post({"model": "qwen-image-chat", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "make it night"},
        {"type": "image_url", "image_url": {"url": junk}}]}]})
    assert response.status_code == 400
    assert "not a picture the studio can read" in error_of(response)["message"]


def test_an_image_model_is_not_a_chat_model(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="qwen-image",
                                       messages=[{"role": "user", "content": "a fox"}])
    assert err.value.body["code"] == "model_not_found"
    assert "qwen-image-chat" in err.value.body["message"]


def test_failures_have_the_images_routes_statuses(studio: ChatStudio) -> None:
    studio.fake.set_models("diffusion_models", [])
    body = {"model": "qwen-image-chat", "messages": [{"role": "user", "content": "a fox"}]}
    response = studio.post(body)
    assert response.status_code == 424
    assert error_of(response)["code"] == "missing_models"
    streamed = studio.post({**body, "stream": True})
    assert streamed.status_code == 200                  # the stream had begun
    events = [line for line in streamed.text.split("\n\n") if line]
    error = json.loads(events[1].removeprefix("data: "))["error"]
    assert error["code"] == "missing_models" and events[-1] == "data: [DONE]"


def test_an_sdk_stream_that_fails_raises(client: OpenAI, studio: ChatStudio) -> None:
    studio.fake.set_models("diffusion_models", [])
    stream = client.chat.completions.create(
        model="qwen-image-chat", stream=True,
        messages=[{"role": "user", "content": "a fox"}])
    with pytest.raises(openai.APIError, match="not on the ComfyUI server"):
        list(stream)


def test_aliases_on_every_route(studio: ChatStudio) -> None:
    ids = [m["id"] for m in httpx.get(studio.v1 + "/models", headers=auth(),
                                      timeout=10).json()["data"]]
    assert "qwen-image-chat" in ids and "gpt-4o" in ids and "dall-e-3" in ids
    chat_answer = studio.post({"model": "gpt-4o",
                               "messages": [{"role": "user", "content": "help"}]})
    assert chat_answer.status_code == 200 and chat_answer.json()["model"] == "qwen-image-chat"
    image = httpx.post(studio.v1 + "/images/generations", headers=auth(), timeout=60,
                       json={"model": "DALL-E-3", "prompt": "x", "size": "256x256", "steps": 1})
    assert image.status_code == 200, image.text
    assert ModelAliases.parse(" a = b ,, c=d ").resolve("A") == "b"
    with pytest.raises(ValueError, match="not ALIAS=MODEL"):
        ModelAliases.parse("oops")


def test_the_llm_router_decides_when_configured(module_fake: FakeComfy) -> None:
    with FakeLlm() as llm:
        llm.answer_decision({"action": "generate", "prompt": "a cabin in the woods",
                             "reason": "asked for a picture"})
        env = {"STUDIO_ROUTER_URL": llm.url, "STUDIO_ROUTER_MODEL": "qwen3:4b"}
        routed, server, thread = start(module_fake, env=env)
        try:
            response = routed.post({"model": "qwen-image-chat", "messages": [
                {"role": "user", "content": "something cosy"}]})
            assert response.status_code == 200, response.text
            content = response.json()["choices"][0]["message"]["content"]
            assert "cabin in the woods" in content and "LLM router" in content
            assert llm.requests and llm.requests[0].body["model"] == "qwen3:4b"
        finally:
            server.should_exit = True
            thread.join(10)

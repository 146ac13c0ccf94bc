"""The LLM router against the fake LLM server: used when valid, the rules otherwise."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from backend.chat import ChatTurn, Decision, LlmRouter, RouterConfig, parse_messages
from backend.chat.llm_router import MAX_ANSWER_BYTES, SYSTEM_PROMPT, completions_url
from tests.fake_llm import FakeLlm

from .conftest import MAX_IMAGE_BYTES, assistant, png, user

IMAGE = png(64, 48)


@pytest.fixture
def fake_llm() -> Iterator[FakeLlm]:
    fake = FakeLlm().start()
    try:
        yield fake
    finally:
        fake.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def router(fake_llm: FakeLlm, clock: Clock) -> AsyncIterator[LlmRouter]:
    config = RouterConfig.from_env({"STUDIO_ROUTER_URL": fake_llm.url,
                                    "STUDIO_ROUTER_MODEL": "qwen3:4b",
                                    "STUDIO_ROUTER_API_KEY": "sekrit",
                                    "STUDIO_ROUTER_TIMEOUT_S": "0.5"})
    assert config is not None
    # the fake is plain http: skip loading the CA bundle (~0.1 s per client)
    async with httpx.AsyncClient(trust_env=False, verify=False) as client:
        yield LlmRouter(config, client=client, clock=clock)


def turn_with_image(text: str) -> ChatTurn:
    messages = [user("a fox"), assistant("Generated.", IMAGE), user(text)]
    return parse_messages(messages, max_image_bytes=MAX_IMAGE_BYTES)


def text_turn(text: str, *attached: bytes) -> ChatTurn:
    return parse_messages([user(text, *attached)], max_image_bytes=MAX_IMAGE_BYTES)


# --- configuration ----------------------------------------------------------------------------


def test_config_from_env() -> None:
    assert RouterConfig.from_env({}) is None
    config = RouterConfig.from_env({"STUDIO_ROUTER_URL": "http://ollama:11434/v1/",
                                    "STUDIO_ROUTER_MODEL": " llama3.2 "})
    assert config == RouterConfig("http://ollama:11434/v1/chat/completions", "llama3.2")
    assert config.timeout_s == 4.0 and config.api_key is None


@pytest.mark.parametrize(("env", "words"), [
    ({"STUDIO_ROUTER_URL": "http://h/v1"}, "STUDIO_ROUTER_MODEL is not"),
    ({"STUDIO_ROUTER_URL": "ollama:11434", "STUDIO_ROUTER_MODEL": "m"}, "not an http(s) URL"),
    ({"STUDIO_ROUTER_URL": "http://h", "STUDIO_ROUTER_MODEL": "m",
      "STUDIO_ROUTER_TIMEOUT_S": "soon"}, "not a number"),
    ({"STUDIO_ROUTER_URL": "http://h", "STUDIO_ROUTER_MODEL": "m",
      "STUDIO_ROUTER_TIMEOUT_S": "0"}, "must be > 0"),
])
def test_config_errors_name_the_setting(env: dict[str, str], words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        RouterConfig.from_env(env)


@pytest.mark.parametrize(("base", "url"), [
    ("http://h:8000", "http://h:8000/v1/chat/completions"),
    ("http://h:8000/v1", "http://h:8000/v1/chat/completions"),
    ("https://gw/api/v1/", "https://gw/api/v1/chat/completions"),
    ("http://h/v1/chat/completions", "http://h/v1/chat/completions"),
])
def test_completions_url(base: str, url: str) -> None:
    assert completions_url(base) == url


# --- the LLM decides ------------------------------------------------------------------------------


async def test_a_valid_answer_decides(router: LlmRouter, fake_llm: FakeLlm) -> None:
    fake_llm.answer_decision({"action": "region_edit", "prompt": "a tram", "region": "the car",
                              "reason": "the user names one object"})
    decision = await router.route(turn_with_image("swap that car out for a tram"), (64, 48))
    assert decision == Decision("region_edit", "a tram", "the user names one object.", "llm",
                                region="the car")


async def test_the_request_carries_texts_and_sizes_never_image_bytes(
    router: LlmRouter, fake_llm: FakeLlm
) -> None:
    fake_llm.answer_decision({"action": "edit", "prompt": "make it night"})
    await router.route(turn_with_image("now make it night"), (64, 48), max_pad=1024)
    received = fake_llm.requests[-1]
    body = received.body
    assert body["model"] == "qwen3:4b"
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    summary = json.loads(body["messages"][1]["content"])
    assert summary == {
        "latest_message": "now make it night", "attached_images": 0, "image_in_context": True,
        "image_size": {"width": 64, "height": 48}, "max_pad": 1024,
        "earlier_messages": [{"role": "user", "text": "a fox", "images": 0},
                             {"role": "assistant", "text": "Generated.", "images": 1}],
    }
    assert "base64" not in json.dumps(body)
    assert received.headers["Authorization"] == "Bearer sekrit"


async def test_fenced_json_and_outpaint_pads(router: LlmRouter, fake_llm: FakeLlm) -> None:
    fake_llm.answer_content('```json\n{"action": "outpaint", "prompt": "more sea", '
                            '"pad_left": 0, "pad_top": 0, "pad_right": 320.0, "pad_bottom": 0}\n```')
    decision = await router.route(turn_with_image("show more sea on the right"), (64, 48),
                                  max_pad=1024)
    assert decision.decided_by == "llm" and decision.action == "outpaint"
    assert decision.pads is not None and decision.pads.as_tuple() == (0, 0, 320, 0)


async def test_llm_generate_keeps_the_size_the_rules_read(
    router: LlmRouter, fake_llm: FakeLlm
) -> None:
    fake_llm.answer_decision({"action": "generate", "prompt": "a cabin in the woods"})
    decision = await router.route(text_turn("a cabin in the woods, 16:9"))
    assert decision.decided_by == "llm" and decision.size == (1664, 928)


async def test_healthcheck_never_asks_the_llm(router: LlmRouter, fake_llm: FakeLlm) -> None:
    decision = await router.route(text_turn("healthcheck"))
    assert decision.action == "generate" and decision.decided_by == "rules"
    assert decision.router_note == "" and fake_llm.requests == []


# --- anything invalid falls back to the rules -----------------------------------------------------


@pytest.mark.parametrize(("answer", "why"), [
    ("I think you want an edit!", "not JSON"),
    ("[1, 2]", "not an object"),
    ('{"action": "upscale", "prompt": "x"}', "unknown action 'upscale'"),
    ('{"action": "edit"}', "no prompt for edit"),
    ('{"action": "edit", "prompt": 42}', "prompt that is not text"),
    ('{"action": "region_edit", "prompt": "a tram"}', "no region"),
    ('{"action": "outpaint", "pad_left": 5000}', "pad_left=5000, outside 0–1024"),
    ('{"action": "outpaint", "pad_top": -10}', "pad_top=-10"),
    ('{"action": "outpaint", "pad_right": true}', "pad_right that is not a whole number"),
    ('{"action": "outpaint", "pad_right": 10.5}', "pad_right that is not a whole number"),
    ('{"action": "outpaint"}', "outpaint with no pads"),
    ('{"action": "multiref", "prompt": "x"}', "multiref without 2–3 attached"),
])
async def test_invalid_answers_fall_back(
    router: LlmRouter, fake_llm: FakeLlm, answer: str, why: str
) -> None:
    fake_llm.answer_content(answer)
    decision = await router.route(turn_with_image("now make it night"), (64, 48), max_pad=1024)
    assert decision.decided_by == "rules"
    assert (decision.action, decision.prompt) == ("edit", "make it night")
    assert why in decision.router_note
    assert decision.router_note.startswith("LLM router not used (")
    assert decision.router_note.endswith("); the rules decided.")


async def test_an_edit_without_any_image_falls_back(router: LlmRouter, fake_llm: FakeLlm) -> None:
    fake_llm.answer_decision({"action": "edit", "prompt": "make it night"})
    decision = await router.route(text_turn("a red fox"))
    assert decision.action == "generate" and "edit without an image" in decision.router_note


async def test_attached_images_must_stay_multiref(router: LlmRouter, fake_llm: FakeLlm) -> None:
    fake_llm.answer_decision({"action": "edit", "prompt": "x"})
    decision = await router.route(text_turn("combine", IMAGE, png(8, 8)))
    assert decision.action == "multiref" and "edit for 2 attached images" in decision.router_note


async def test_a_garbage_body_and_a_huge_answer_fall_back(
    router: LlmRouter, fake_llm: FakeLlm
) -> None:
    fake_llm.answer_body(b"<html>proxy error</html>")
    decision = await router.route(turn_with_image("make it night"), (64, 48))
    assert "a body that is not JSON" in decision.router_note
    fake_llm.answer_body(b"x" * (MAX_ANSWER_BYTES + 1))
    decision = await router.route(turn_with_image("make it night"), (64, 48))
    assert "answered more than 64 KB" in decision.router_note
    fake_llm.answer_body(b'{"choices": []}')
    decision = await router.route(turn_with_image("make it night"), (64, 48))
    assert "without choices[0].message.content" in decision.router_note


async def test_http_4xx_falls_back_without_cooling_down(
    router: LlmRouter, fake_llm: FakeLlm
) -> None:
    fake_llm.answer_status(404)
    first = await router.route(turn_with_image("make it night"), (64, 48))
    assert "answered HTTP 404" in first.router_note
    await router.route(turn_with_image("make it night"), (64, 48))
    assert len(fake_llm.requests) == 2


# --- slow, failing or down: the rules, and a cool-down --------------------------------------------


async def test_slow_answer_times_out_then_is_skipped_for_the_cooldown(
    router: LlmRouter, fake_llm: FakeLlm, clock: Clock
) -> None:
    fake_llm.delay_s = 5.0
    fake_llm.answer_decision({"action": "help", "prompt": ""})
    decision = await router.route(turn_with_image("make it night"), (64, 48))
    assert decision.action == "edit" and decision.decided_by == "rules"
    assert "timed out after 0.5 s" in decision.router_note
    clock.now += 10
    skipped = await router.route(turn_with_image("remove the background"), (64, 48))
    assert skipped.action == "remove_background"
    assert "skipped for 20 s more after it timed out after 0.5 s" in skipped.router_note
    assert len(fake_llm.requests) == 1
    fake_llm.delay_s = 0.0
    clock.now += 30
    back = await router.route(turn_with_image("make it night"), (64, 48))
    assert back.decided_by == "llm" and back.action == "help"


async def test_server_error_falls_back_and_cools_down(
    router: LlmRouter, fake_llm: FakeLlm
) -> None:
    fake_llm.answer_status(500)
    decision = await router.route(turn_with_image("make it night"), (64, 48))
    assert decision.decided_by == "rules" and "answered HTTP 500" in decision.router_note
    again = await router.route(turn_with_image("make it night"), (64, 48))
    assert "skipped for 30 s more" in again.router_note and len(fake_llm.requests) == 1


async def test_unreachable_server_falls_back(router: LlmRouter, fake_llm: FakeLlm) -> None:
    fake_llm.stop()
    decision = await router.route(turn_with_image("extend to the left"), (64, 48))
    assert decision.action == "outpaint" and decision.decided_by == "rules"
    assert "unreachable (ConnectError)" in decision.router_note


async def test_cooldown_zero_asks_every_time(fake_llm: FakeLlm) -> None:
    config = RouterConfig(completions_url(fake_llm.url), "m", cooldown_s=0.0)
    llm = LlmRouter(config)  # its own client, closed by aclose
    try:
        fake_llm.answer_status(503)
        for _ in range(2):
            decision = await llm.route(turn_with_image("make it night"), (64, 48))
            assert "answered HTTP 503" in decision.router_note
        assert len(fake_llm.requests) == 2
    finally:
        await llm.aclose()

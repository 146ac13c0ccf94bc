"""The reply builders, read back by the official `openai` SDK (models and a real client)."""

from __future__ import annotations

import json
from collections.abc import Iterable

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from backend.chat import (
    DONE,
    HELP_TEXT,
    KEEP_ALIVE,
    CompletionMeta,
    Decision,
    Pads,
    completion_body,
    content_event,
    error_event,
    finish_event,
    help_text,
    parse_messages,
    reply_text,
    role_event,
    stream_events,
    summary_line,
)

from .conftest import MAX_IMAGE_BYTES, png

META = CompletionMeta("chatcmpl-test", 1_700_000_000, "qwen-image-chat")
PNG = png(16, 8, (200, 100, 50))


def sdk_client(body: bytes, content_type: str) -> openai.OpenAI:
    """An SDK client whose every request is answered with `body`."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": content_type})

    http = httpx.Client(transport=httpx.MockTransport(answer))
    # newer SDKs type this as their httpx fork's Client; httpx's works the same at run time
    return openai.OpenAI(base_url="http://studio.test/v1", api_key="x",
                         http_client=http,  # type: ignore[arg-type,unused-ignore]
                         max_retries=0)


def sse(events: Iterable[str]) -> bytes:
    return "".join(events).encode("utf-8")


# --- texts -------------------------------------------------------------------------------------


def test_summary_lines() -> None:
    generate = Decision("generate", "a red fox", "x")
    assert summary_line(generate, seed=42, size=(1024, 1024)) == \
        'Generated "a red fox" — seed 42, 1024×1024.'
    outpaint = Decision("outpaint", "", "x", pads=Pads(left=512))
    assert summary_line(outpaint, seed=7, size=(1536, 1024)) == \
        "Extended the picture (left 512 px) — seed 7, 1536×1024."
    region = Decision("region_edit", "a tram", "x", "llm", region="the car")
    assert summary_line(region, seed=None, size=(800, 600)) == \
        'Changed the car: "a tram" — 800×600. (Routed by the LLM router.)'
    removal = Decision("remove_background", "", "x")
    assert summary_line(removal, seed=1, size=(64, 64)).startswith("Removed the background")
    long = Decision("edit", "x" * 500, "x")
    assert len(summary_line(long, seed=1, size=(1, 1))) < 130


def test_reply_text_image_round_trips_through_the_parser() -> None:
    decision = Decision("generate", "a [weird] prompt\nwith lines", "x")
    content = reply_text(decision, seed=3, size=(16, 8), png=PNG)
    line, _, markdown = content.partition("\n\n")
    assert line == 'Generated "a [weird] prompt with lines" — seed 3, 16×8.'
    assert markdown.startswith("![a (weird) prompt with lines](data:image/png;base64,")
    reply = {"role": "assistant", "content": content}
    turn = parse_messages([{"role": "user", "content": "a"}, reply,
                           {"role": "user", "content": "make it night"}],
                          max_image_bytes=MAX_IMAGE_BYTES)
    assert turn.context_image is not None and turn.context_image.data == PNG
    assert turn.history[-1].text == line


def test_help_text() -> None:
    assert help_text(Decision("help", "", "Here is what I can do.")) == HELP_TEXT
    needs = help_text(Decision("help", "", "Removing a background needs a picture."))
    assert needs.startswith("Removing a background needs a picture.\n\n")
    assert needs.endswith(HELP_TEXT)
    assert "remove the background" in HELP_TEXT and "16:9" in HELP_TEXT


# --- non-streaming -------------------------------------------------------------------------------


def test_completion_body_validates_as_the_sdk_model() -> None:
    body = completion_body(META, "Generated.", [PNG])
    completion = ChatCompletion.model_validate(body)
    message = completion.choices[0].message
    assert message.content == "Generated." and message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    assert message.model_extra is not None
    assert message.model_extra["images"][0]["image_url"]["url"].startswith(
        "data:image/png;base64,")


def test_completion_body_without_images_has_no_images_key() -> None:
    body = completion_body(META, HELP_TEXT)
    message = ChatCompletion.model_validate(body).choices[0].message
    assert message.content == HELP_TEXT and "images" not in (message.model_extra or {})


def test_sdk_client_reads_the_non_streaming_body() -> None:
    content = reply_text(Decision("edit", "make it night", "x"), seed=1, size=(16, 8), png=PNG)
    body = json.dumps(completion_body(META, content, [PNG])).encode()
    client = sdk_client(body, "application/json")
    result = client.chat.completions.create(
        model="qwen-image-chat", messages=[{"role": "user", "content": "make it night"}])
    assert result.choices[0].message.content == content
    assert result.id == META.id and result.model == META.model


# --- streaming -------------------------------------------------------------------------------------


def test_events_are_single_sse_data_lines() -> None:
    for event in (role_event(META), content_event(META, "a\nb", [PNG]), finish_event(META)):
        assert event.startswith("data: ") and event.endswith("\n\n")
        assert "\n" not in event[:-2]
        ChatCompletionChunk.model_validate(json.loads(event[len("data: "):]))
    assert KEEP_ALIVE == ": keep-alive\n\n" and DONE == "data: [DONE]\n\n"


def test_sdk_client_streams_role_keepalives_content_finish_done() -> None:
    content = reply_text(Decision("generate", "a fox", "x"), seed=5, size=(16, 8), png=PNG)
    events = [role_event(META), KEEP_ALIVE, KEEP_ALIVE, content_event(META, content, [PNG]),
              KEEP_ALIVE, finish_event(META), DONE]
    client = sdk_client(sse(events), "text/event-stream")
    chunks = list(client.chat.completions.create(
        model="qwen-image-chat", messages=[{"role": "user", "content": "a fox"}], stream=True))
    assert all(isinstance(chunk, ChatCompletionChunk) for chunk in chunks)
    assert len(chunks) == 3  # comments are not chunks; [DONE] ends the stream
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == content
    assert chunks[1].choices[0].delta.model_extra is not None
    assert chunks[1].choices[0].delta.model_extra["images"][0]["type"] == "image_url"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_sdk_client_streams_a_text_only_answer() -> None:
    client = sdk_client(sse(stream_events(META, HELP_TEXT)), "text/event-stream")
    stream = client.chat.completions.create(
        model="qwen-image-chat", messages=[{"role": "user", "content": "help"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream) == HELP_TEXT


def test_a_late_failure_raises_apierror_in_the_sdk() -> None:
    events = [role_event(META), KEEP_ALIVE,
              error_event("GPU out of memory: lower the resolution.", code="out_of_memory"),
              DONE]
    client = sdk_client(sse(events), "text/event-stream")
    stream = client.chat.completions.create(
        model="qwen-image-chat", messages=[{"role": "user", "content": "a fox"}], stream=True)
    with pytest.raises(openai.APIError, match="GPU out of memory: lower the resolution."):
        list(stream)


def test_completion_meta_new_is_unique() -> None:
    first, second = CompletionMeta.new("m"), CompletionMeta.new("m")
    assert first.id != second.id and first.id.startswith("chatcmpl-") and first.model == "m"

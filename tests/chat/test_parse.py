"""parse_messages: OpenAI chat messages → ChatTurn, and every refusal as a sentence."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import pytest

from backend.chat import ChatInputError, parse_messages
from backend.chat.parse import HISTORY_CHARS, HISTORY_MESSAGES, NO_URLS, clean_text

from .conftest import MAX_IMAGE_BYTES, assistant, data_url, png, user

RED, BLUE, GREEN = png(8, 8, (255, 0, 0)), png(8, 8, (0, 0, 255)), png(8, 8, (0, 255, 0))


def parse(messages: Any, **limits: int) -> Any:
    return parse_messages(messages, max_image_bytes=limits.pop("max_image_bytes",
                                                               MAX_IMAGE_BYTES), **limits)


def error(messages: Any, **limits: int) -> ChatInputError:
    with pytest.raises(ChatInputError) as info:
        parse(messages, **limits)
    return info.value


# --- text and images of the latest user message -----------------------------------------


def test_plain_string_content() -> None:
    turn = parse([{"role": "system", "content": "be nice"}, user("a red fox")])
    assert turn.text == "a red fox"
    assert turn.attached == () and turn.context_image is None and turn.source_image is None
    assert turn.message_index == 1


def test_content_parts_with_image_url_object_and_bare_string() -> None:
    turn = parse([{"role": "user", "content": [
        {"type": "text", "text": "combine"},
        {"type": "image_url", "image_url": {"url": data_url(RED), "detail": "high"}},
        {"type": "image_url", "image_url": data_url(BLUE, "image/webp")},
        {"type": "input_image", "image_url": data_url(GREEN, "image/jpeg")},
        {"type": "text", "text": "please"},
    ]}])
    assert turn.text == "combine\nplease"
    assert [image.data for image in turn.attached] == [RED, BLUE, GREEN]
    assert [image.mime for image in turn.attached] == ["image/png", "image/webp", "image/jpeg"]
    assert [image.image_index for image in turn.attached] == [0, 1, 2]
    assert turn.context_image is None and turn.source_image is turn.attached[0]


def test_any_image_mime_and_case_insensitive_header() -> None:
    url = "DATA:IMAGE/X-Portable-Anymap;BASE64," + base64.b64encode(RED).decode()
    turn = parse([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}])
    assert turn.attached[0].mime == "image/x-portable-anymap"
    assert turn.attached[0].data == RED


def test_data_url_parameters_whitespace_missing_padding_and_urlsafe() -> None:
    payload = base64.b64encode(b"\xfb\xff" + RED).decode()
    wrapped = "\n".join(payload[i:i + 76] for i in range(0, len(payload), 76))
    unpadded = payload.rstrip("=")
    urlsafe = base64.urlsafe_b64encode(b"\xfb\xff" + RED).decode()
    for body in (wrapped, unpadded, urlsafe):
        url = f"data:image/png;name=a.png;base64,{body}"
        turn = parse([{"role": "user", "content": [{"type": "image_url", "image_url": url}]}])
        assert turn.attached[0].data == b"\xfb\xff" + RED


def test_image_without_text_is_accepted() -> None:
    turn = parse([user("", RED)])
    assert turn.text == "" and turn.attached[0].data == RED


# --- the latest image in the conversation ------------------------------------------------


def test_latest_image_from_an_assistant_reply_markdown_and_images_list_count_once() -> None:
    messages = [user("a fox"), assistant("Generated.", RED), user("make it night")]
    turn = parse(messages)
    assert turn.attached == ()
    assert turn.context_image is not None
    assert turn.context_image.data == RED
    assert (turn.context_image.message_index, turn.context_image.image_index) == (1, 0)
    assert turn.context_image.role == "assistant"
    assert turn.source_image is turn.context_image


def test_latest_of_several_images_wins_and_the_index_allows_branching() -> None:
    messages = [user("a fox"), assistant("one", RED), user("night"), assistant("two", BLUE),
                user("remove the background")]
    turn = parse(messages)
    assert turn.context_image is not None and turn.context_image.data == BLUE
    assert turn.context_image.message_index == 3
    # a client branches by sending the conversation up to the older image
    branch = parse(messages[:2] + [user("make it snow")])
    assert branch.context_image is not None and branch.context_image.data == RED


def test_litellm_images_list_alone_and_content_none() -> None:
    reply = {"role": "assistant", "content": None,
             "images": [{"type": "image_url", "image_url": {"url": data_url(BLUE)}}]}
    turn = parse([user("a"), reply, user("make it night")])
    assert turn.context_image is not None and turn.context_image.data == BLUE


def test_markdown_image_in_text_parts_of_an_assistant() -> None:
    reply = {"role": "assistant", "content": [
        {"type": "text", "text": f"Done.\n\n![x]({data_url(GREEN)})"}]}
    turn = parse([user("a"), reply, user("zoom out")])
    assert turn.context_image is not None and turn.context_image.data == GREEN
    assert turn.history[-1].text == "Done." and turn.history[-1].images == 1


def test_the_users_own_earlier_attachment_is_the_latest_image() -> None:
    turn = parse([user("here", RED), assistant("Here is what I can do."), user("make it night")])
    assert turn.context_image is not None and turn.context_image.role == "user"
    assert turn.context_image.data == RED


def test_an_attached_image_wins_over_the_conversation() -> None:
    turn = parse([user("a"), assistant("x", RED), user("edit this", BLUE)])
    assert turn.context_image is None
    assert turn.source_image is not None and turn.source_image.data == BLUE


def test_messages_after_the_latest_user_message_are_ignored() -> None:
    turn = parse([user("a fox"), {"role": "assistant", "content": [{"type": "weird"}]}])
    assert turn.text == "a fox" and turn.message_index == 0


def test_roles_tool_developer_and_refusal_parts_are_accepted() -> None:
    turn = parse([
        {"role": "developer", "content": "x"},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}],
         "tool_calls": []},
        {"role": "tool", "content": "{}", "tool_call_id": "1"},
        user("a fox"),
    ])
    assert turn.text == "a fox" and [entry.role for entry in turn.history] == ["assistant"]


def test_unknown_part_type_in_an_earlier_message_is_ignored() -> None:
    earlier = {"role": "user", "content": [{"type": "input_audio", "input_audio": {}},
                                           {"type": "text", "text": "hi"}]}
    assert parse([earlier, user("a fox")]).history[0].text == "hi"


# --- history for the LLM router ------------------------------------------------------------


def test_history_is_short_and_carries_no_image_bytes() -> None:
    messages: list[dict[str, Any]] = []
    for index in range(12):
        messages += [user(f"prompt {index} " + "x" * 1000), assistant(f"reply {index}", RED)]
    turn = parse([*messages, user("again")])
    assert len(turn.history) == HISTORY_MESSAGES
    assert turn.history[-1].role == "assistant" and turn.history[-1].images == 1
    assert all(len(entry.text) <= HISTORY_CHARS for entry in turn.history)
    assert not any("base64" in entry.text for entry in turn.history)


# --- cleaning (never a crash) ------------------------------------------------------------------


def test_lone_surrogate_and_control_characters_are_cleaned_and_flagged() -> None:
    turn = parse([user("a\ud800 fox\x00 in\x07 the\r\nsnow\x1b")])
    assert turn.text == "a\ufffd fox in the\nsnow"
    assert turn.text_cleaned is True
    turn.text.encode("utf-8")  # safe for every encoder downstream


def test_clean_text_keeps_tabs_newlines_and_astral_characters() -> None:
    assert clean_text("a\tb\nc 🦊") == ("a\tb\nc 🦊", False)


def test_text_is_not_flagged_when_nothing_changed() -> None:
    assert parse([user("line one\r\nline two")]).text_cleaned is False


# --- refusals ---------------------------------------------------------------------------------


def test_remote_image_url_is_refused_with_the_sentence() -> None:
    exc = error([{"role": "user", "content": [
        {"type": "text", "text": "edit"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}])
    assert NO_URLS in exc.message
    assert exc.message.startswith("The studio fetches nothing from URLs: attach the image as a data URL.")
    assert exc.param == "messages[0].content[1].image_url" and exc.code == "invalid_input"


def test_http_image_in_the_latest_assistant_reply_is_refused_not_skipped() -> None:
    reply = {"role": "assistant", "content": "![x](http://host/files/1.png)"}
    exc = error([user("a"), assistant("old", RED), reply, user("make it night")])
    assert NO_URLS in exc.message and exc.param == "messages[2].content"


def test_relative_link_in_the_conversation_is_refused() -> None:
    reply = {"role": "assistant", "content": "![x](/api/v1/files/abc/content)"}
    exc = error([user("a"), reply, user("make it night")])
    assert "is a link, not a data URL" in exc.message and NO_URLS in exc.message


def test_an_older_remote_image_does_not_matter_when_a_newer_one_is_data() -> None:
    old = {"role": "assistant", "content": "![x](https://host/1.png)"}
    turn = parse([user("a"), old, user("b"), assistant("new", RED), user("night")])
    assert turn.context_image is not None and turn.context_image.data == RED


@pytest.mark.parametrize(("url", "words"), [
    ("data:image/png;base64,!!!notbase64!!!", "not valid base64"),
    ("data:image/png;base64,QUJD=X", "not valid base64"),
    ("data:image/png;base64,A", "not valid base64"),
    ("data:text/plain;base64,aGVsbG8=", "text/plain, not an image"),
    ("data:;base64,aGVsbG8=", "no type, not an image"),
    ("data:image/png,%89PNG", "must be base64"),
    ("data:image/png;base64", "not a valid data URL"),
    ("data:image/png;base64,", "is empty"),
])
def test_bad_data_urls(url: str, words: str) -> None:
    exc = error([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}])
    assert words in exc.message, exc.message
    assert exc.param == "messages[0].content[0].image_url"


def test_too_many_images() -> None:
    exc = error([user("combine", RED, BLUE, GREEN, RED)])
    assert exc.message == "Attach at most 3 images to a message (this one has 4)."


def test_image_over_the_byte_limit_is_refused_before_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_decode(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("decoded an image that could not fit")

    monkeypatch.setattr(binascii, "a2b_base64", no_decode)
    huge = "data:image/png;base64," + "A" * 10_000_000
    exc = error([{"role": "user", "content": [{"type": "image_url", "image_url": huge}]}],
                max_image_bytes=1000)
    assert exc.code == "file_too_large" and "over the 1000 bytes limit" in exc.message


def test_byte_limit_is_exact() -> None:
    data = bytes(range(256)) * 4  # 1024 bytes
    ok = parse([user("x", data)], max_image_bytes=1024)
    assert ok.attached[0].data == data
    exc = error([user("x", data)], max_image_bytes=1023)
    assert exc.code == "file_too_large" and "1023 bytes" in exc.message


def test_a_large_context_image_is_bounded_too() -> None:
    exc = error([user("a"), assistant("x", bytes(5000)), user("night")], max_image_bytes=4096)
    assert exc.code == "file_too_large" and exc.param == "messages[1].content"


@pytest.mark.parametrize(("messages", "param", "words"), [
    ({"role": "user"}, "messages", "must be a list"),
    ([], "messages", "no user message"),
    ([{"role": "system", "content": "x"}, {"role": "assistant", "content": "y"}], "messages",
     "no user message"),
    (["hello", {"role": "user", "content": "x"}], "messages[0]", "must be an object"),
    ([{"role": "robot", "content": "x"}, {"role": "user", "content": "x"}], "messages[0].role",
     "must be one of"),
    ([{"role": "user", "content": 42}], "messages[0].content", "text or a list"),
    ([{"role": "user", "content": "   "}], "messages[0].content", "is empty"),
    ([{"role": "user", "content": [{"type": "file", "file": {}}]}], "messages[0].content[0].type",
     "'file' at messages[0].content[0] is not supported"),
    ([{"role": "user", "content": [{"type": "image_url"}]}],
     "messages[0].content[0].image_url", "has no image URL"),
    ([{"role": "user", "content": [{"type": "text", "text": 3}]}],
     "messages[0].content[0].text", "must be text"),
])
def test_malformed_conversations(messages: Any, param: str, words: str) -> None:
    exc = error(messages)
    assert exc.param == param and words in exc.message, exc.message


def test_text_over_the_limit() -> None:
    exc = error([user("x" * 101)], max_text_chars=100)
    assert exc.message == "The message is too long (101 characters; at most 100)."


def test_markdown_scan_on_an_unclosed_huge_data_url() -> None:
    text = "![a](data:image/png;base64," + "A" * 2_000_000  # no closing parenthesis
    turn = parse([user(text)], max_text_chars=10**7)
    assert turn.attached == () and turn.text == text


@pytest.mark.parametrize("markdown", [
    "![a](<{url}>)", '![a]({url} "a title")', "![]( {url} )", "![x]({url})",
])
def test_markdown_image_forms(markdown: str) -> None:
    text = "before " + markdown.format(url=data_url(RED)) + " after ![not an image] (x)"
    turn = parse([user(text)])
    assert [image.data for image in turn.attached] == [RED]
    assert turn.text == "before  after ![not an image] (x)"

"""backend/prompts: saved styles (shipped + the user's file) and each person's recent prompts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.modes.generate import GenerateRequest
from backend.modes.remove_background import RemoveBackgroundRequest
from backend.prompts import HISTORY_SIZE, PromptHistory, UnknownStyle, load_styles
from backend.requests import InvalidRequest


def test_shipped_styles_append_to_prompt_and_negative(tmp_path: Path) -> None:
    book = load_styles(tmp_path)
    assert {"Photo", "Cinematic", "Watercolor"} <= set(book.names()) and book.problem is None
    photo = book.get("Photo")
    request = GenerateRequest(prompt="a red bicycle", negative_prompt="text", width=512,
                              height=512)
    styled = book.styled(request, "Photo")
    assert styled.prompt == f"a red bicycle, {photo.prompt}"
    assert styled.negative_prompt == f"text, {photo.negative}"
    assert book.styled(request, "") is request and book.styled(request, None) is request


def test_the_users_file_adds_and_replaces_styles(tmp_path: Path) -> None:
    (tmp_path / "styles.json").write_text(json.dumps([
        {"name": "Banana", "prompt": "banana yellow palette"},
        {"name": "Photo", "prompt": "my photo look", "negative": ""},
    ]))
    book = load_styles(tmp_path)
    assert book.names()[-1] == "Banana" and book.get("Photo").prompt == "my photo look"
    request = GenerateRequest(prompt="", width=512, height=512)
    assert book.styled(request, "Banana").prompt == "banana yellow palette"


def test_a_broken_user_file_says_so_and_keeps_the_shipped_styles(tmp_path: Path) -> None:
    (tmp_path / "styles.json").write_text('[{"name": "x", "prompt": 3}]')
    book = load_styles(tmp_path)
    assert book.problem is not None and "prompt and negative are text" in book.problem
    assert "Photo" in book.names() and "x" not in book.names()
    (tmp_path / "styles.json").write_text("{not json")
    assert "not valid JSON" in (load_styles(tmp_path).problem or "")


def test_an_unknown_style_is_a_sentence_naming_the_known_ones(tmp_path: Path) -> None:
    book = load_styles(tmp_path)
    with pytest.raises(UnknownStyle, match="There is no style named 'Vaporwave'.*Photo") as info:
        book.styled(GenerateRequest(prompt="x", width=512, height=512), "Vaporwave")
    assert info.value.field == "style"
    with pytest.raises(InvalidRequest, match="has no prompt"):
        book.styled(RemoveBackgroundRequest(image=b"x"), "Photo")


def test_history_keeps_the_last_fifty_distinct_prompts_per_person(tmp_path: Path) -> None:
    history = PromptHistory(tmp_path)
    for i in range(HISTORY_SIZE + 5):
        history.add("user:ann", f"prompt {i}")
    history.add("user:ann", "prompt 10")          # used again: moves up, not repeated
    history.add("user:ann", "   ")                # nothing typed: not kept
    recent = history.recent("user:ann")
    assert len(recent) == HISTORY_SIZE and recent[0] == "prompt 10"
    assert recent.count("prompt 10") == 1 and "prompt 0" not in recent
    assert history.recent("user:bob") == []
    assert history.recent("user:ann", "PROMPT 5") == ["prompt 54", "prompt 53", "prompt 52",
                                                     "prompt 51", "prompt 50", "prompt 5"]
    assert PromptHistory(tmp_path).recent("user:ann")[0] == "prompt 10"   # kept on disk
    assert not any("ann" in p.name for p in (tmp_path / "prompts").iterdir())

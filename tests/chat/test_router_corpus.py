"""Every phrasing in router_corpus.json through parse → route, as a client would send it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backend.chat import image_size, parse_messages, route
from backend.chat.router import ACTIONS

from .conftest import MAX_IMAGE_BYTES, assistant, png, user

CORPUS = json.loads((Path(__file__).parent / "router_corpus.json").read_text("utf-8"))
ENTRIES: list[dict[str, Any]] = CORPUS["entries"]
STUDIO_MAX_PAD = 1024  # Settings.max_outpaint_pad's default


def messages_for(entry: dict[str, Any]) -> list[dict[str, Any]]:
    context = entry["context"]
    size = context.get("image")
    earlier: list[dict[str, Any]] = []
    if "history" in context:
        for role, text, count in context["history"]:
            images = [png(*(size or (512, 512)))] * count
            earlier.append(user(text, *images) if role == "user" else assistant(text, *images))
    elif size is not None:
        earlier = [user("a picture"), assistant("Generated a picture.", png(*size))]
    attached = [png(w, h, (10 * i, 50, 90)) for i, (w, h) in enumerate(context.get("attached", []))]
    return [*earlier, user(entry["text"], *attached)]


def test_corpus_is_large_and_ids_are_unique() -> None:
    ids = [entry["id"] for entry in ENTRIES]
    assert len(ids) >= 80
    assert len(set(ids)) == len(ids)
    assert {entry["expect"]["action"] for entry in ENTRIES} == set(ACTIONS)


@pytest.mark.parametrize("entry", ENTRIES, ids=[entry["id"] for entry in ENTRIES])
def test_router_corpus(entry: dict[str, Any]) -> None:
    turn = parse_messages(messages_for(entry), max_image_bytes=MAX_IMAGE_BYTES)
    source = turn.source_image
    size = image_size(source.data) if source is not None else None
    decision = route(turn, size, max_pad=entry["context"].get("max_pad", STUDIO_MAX_PAD))
    expect = entry["expect"]
    got = {
        "action": decision.action,
        "prompt": decision.prompt,
        "region": decision.region,
        "pads": list(decision.pads.as_tuple()) if decision.pads else None,
        "size": list(decision.size) if decision.size else None,
    }
    wanted = {key: expect[key] for key in got if key in expect}
    assert {key: got[key] for key in wanted} == wanted, decision.reason
    assert decision.decided_by == "rules"
    assert decision.reason.endswith(".")
    if decision.action != "outpaint":
        assert decision.pads is None
    if decision.action != "region_edit":
        assert decision.region is None

"""The router's API around the rules: images_for, image_size, geometry, reasons."""

from __future__ import annotations

import dataclasses

import pytest

from backend.chat import ChatTurn, Decision, Pads, image_size, images_for, parse_messages, route
from backend.chat.geometry import Amount, aspect_pads, aspect_size, side_pads, zoom_pads

from .conftest import MAX_IMAGE_BYTES, assistant, png, user

A, B = png(40, 30, (1, 2, 3)), png(20, 20, (4, 5, 6))


def turn_of(*messages: dict[str, object]) -> ChatTurn:
    return parse_messages(list(messages), max_image_bytes=MAX_IMAGE_BYTES)


def test_images_for_each_action() -> None:
    context = turn_of(user("a"), assistant("x", A), user("make it night"))
    attached = turn_of(user("combine", A, B))
    assert images_for(route(context), context) == (context.context_image,)
    assert images_for(route(attached), attached) == attached.attached
    fresh = turn_of(user("a fox"))
    assert images_for(route(fresh), fresh) == ()
    helped = turn_of(user("a"), assistant("x", A), user("help"))
    assert images_for(route(helped), helped) == ()


def test_image_size_reads_the_header_only() -> None:
    assert image_size(A) == (40, 30)
    assert image_size(b"not an image") is None
    assert image_size(A[:50]) == (40, 30)  # the pixels are not read: a cut file has a size


def test_decision_is_frozen() -> None:
    decision = Decision("generate", "a fox", "x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.prompt = "b"  # type: ignore[misc]


def test_capped_pads_are_said_in_the_reason() -> None:
    turn = turn_of(user("a"), assistant("x", A), user("extend to the left by 3000 px"))
    decision = route(turn, (1024, 1024), max_pad=1024)
    assert decision.pads == Pads(left=1024)
    assert decision.reason == ("Extending the latest image (left 1024 px; capped at 1024 px "
                               "per side).")
    assert route(turn, (1024, 1024)).pads == Pads(left=3000)  # no cap given


def test_unknown_image_size_uses_a_stand_in() -> None:
    turn = turn_of(user("a"), assistant("x", A), user("extend to the left"))
    assert route(turn, None).pads == Pads(left=512)


@pytest.mark.parametrize(("text", "reason"), [
    ("remove the background", "Removing a background needs a picture: attach one, or describe "
                              "one to generate first."),
    ("zoom out", "Extending a picture needs a picture: attach one, or describe one to generate "
                 "first."),
    ("replace the car with a tram", "Changing the car needs a picture: attach one, or describe "
                                    "one to generate first."),
    ("what can you do?", "Here is what I can do."),
    ("why is the sky blue?", "I make and edit pictures; I don't answer questions."),
])
def test_help_reasons(text: str, reason: str) -> None:
    decision = route(turn_of(user(text)))
    assert (decision.action, decision.reason) == ("help", reason)


def test_geometry() -> None:
    assert side_pads((1000, 500), ("left", "bottom"), Amount(fraction=0.1)) == Pads(100, 0, 0, 50)
    assert side_pads((1000, 500), ("right",), Amount(pixels=64)) == Pads(right=64)
    assert aspect_pads((1000, 1000), (16, 9)) == Pads(389, 0, 389, 0)
    assert aspect_pads((1001, 1000), (1, 1)) == Pads()  # within 1 %
    assert aspect_pads((1000, 1000), (9, 16), ("bottom",)) == Pads(bottom=778)
    assert zoom_pads((100, 200), 2.0, None) == Pads(50, 100, 50, 100)
    assert zoom_pads((100, 200), None, 10) == Pads(10, 10, 10, 10)
    assert aspect_size((32, 18)) == (1664, 928)  # reduced to 16:9 first
    assert aspect_size((5, 4)) == (1488, 1184)
    assert all(side % 16 == 0 for side in aspect_size((7, 3)))
    assert Pads(1, 0, 3, 0).describe() == "left 1 px, right 3 px"

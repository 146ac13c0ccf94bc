"""The Chat tab's conversation → the turn: every shape Gradio's Chatbot gives an earlier picture
back in is read (never dropped so that "make it night" would generate), and the branch choice."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest
from gradio.components.chatbot import ComponentMessage, FileMessage
from gradio.data_classes import FileData
from gradio.utils import get_upload_folder
from PIL import Image

from backend.chat import route
from ui.chat_turns import (
    LostImage,
    Picture,
    item_id_of,
    reply_file,
    source_for,
    text_of,
    turn_for,
)

MAX = 10_000_000


@pytest.fixture
def png(tmp_path: Path) -> Path:
    path = tmp_path / "banana-item-abc123.png"
    Image.new("RGB", (16, 12), (200, 40, 40)).save(path)
    return path


def roots(tmp_path: Path) -> list[str]:
    return [str(tmp_path), get_upload_folder()]


def convo(picture: object) -> list[object]:
    return [{"role": "user", "content": [{"type": "text", "text": "a red fox"}]},
            {"role": "assistant", "content": ["Generated a fox.", picture]}]


def shapes(p: Path) -> dict[str, object]:
    s = str(p)
    return {
        "normalised file dict": {"type": "file", "file": {"path": s, "mime_type": "image/png",
                                                          "meta": {"_type": "gradio.FileData"}},
                                 "alt_text": None},
        "FileData dict": {"path": s, "url": f"/gradio_api/file={s}", "orig_name": p.name},
        "FileData": FileData(path=s, orig_name=p.name),
        "FileMessage": FileMessage(file=FileData(path=s)),
        "component dict": {"type": "component", "component": "image", "value": {"path": s},
                           "constructor_args": {}, "props": {}},
        "component dict, path value": {"type": "component", "component": "image", "value": s},
        "ComponentMessage": ComponentMessage(component="image", value={"path": s},
                                             constructor_args={}, props={}),
        "Path": p,
        "tuple (path, alt)": (s, "a fox"),
        "bare path": s,
        "only a Gradio URL": {"url": f"http://127.0.0.1:7860/gradio_api/file={s}"},
    }


@pytest.mark.parametrize("shape", list(shapes(Path("/x.png"))))
def test_every_shape_of_an_earlier_picture_is_found(shape: str, png: Path,
                                                    tmp_path: Path) -> None:
    history = convo(shapes(png)[shape])
    found = source_for(history, None, roots(tmp_path))
    assert found is not None and Path(found.path).read_bytes() == png.read_bytes()
    assert found.message_index == 1
    turn, _ = turn_for("make it night", [], history, None, roots=roots(tmp_path), max_bytes=MAX)
    assert turn.context_image is not None
    assert route(turn).action == "edit"


def test_a_gradio_image_component_and_a_whole_message_content(png: Path, tmp_path: Path) -> None:
    component = gr.Image(str(png), render=False)     # Gradio copies it into its cache
    for content in (component, (str(png),), {"path": str(png)}):
        history = [{"role": "assistant", "content": content}]
        found = source_for(history, None, roots(tmp_path))
        assert found is not None, content
        assert Path(found.path).read_bytes() == png.read_bytes()


def test_what_gradio_gives_back_for_our_reply_keeps_the_item(png: Path, tmp_path: Path) -> None:
    chatbot = gr.Chatbot(render=False)
    sent = [{"role": "user", "content": "a fox"},
            {"role": "assistant", "content": ["Generated.", reply_file(str(png), "item-42")]}]
    back = chatbot.preprocess(chatbot.postprocess(sent))
    found = source_for(back, None, roots(tmp_path))
    assert isinstance(found, Picture) and found.item_id == "item-42"
    assert text_of(back[1]) == "Generated."


@pytest.mark.parametrize("lost", ["gone", "outside", "empty component", "no path"])
def test_a_picture_that_cannot_be_read_refuses_the_turn(lost: str, png: Path,
                                                        tmp_path: Path) -> None:
    part: object = {
        "gone": {"path": str(tmp_path / "deleted.png")},
        "outside": {"path": "/etc/hostname.png"},
        "empty component": {"type": "component", "component": "image", "value": None},
        "no path": {"type": "file", "file": {}},
    }[lost]
    history = [*convo({"path": str(png)}), {"role": "user", "content": "and then"},
               {"role": "assistant", "content": ["Edited.", part]}]
    with pytest.raises(LostImage) as raised:
        turn_for("make it night", [], history, None, roots=roots(tmp_path), max_bytes=MAX)
    assert "message 4" in raised.value.message or "outside" in raised.value.message \
        or "no file" in raised.value.message


def test_text_and_other_files_are_not_pictures(png: Path, tmp_path: Path) -> None:
    history = [*convo({"path": str(png)}),
               {"role": "user", "content": [{"type": "text", "text": "/not/a/picture.txt"},
                                            {"path": str(tmp_path / "notes.txt"),
                                             "mime_type": "text/plain"}]}]
    found = source_for(history, None, roots(tmp_path))
    assert found is not None and found.message_index == 1
    assert source_for([{"role": "user", "content": "a fox"}], None, roots(tmp_path)) is None


def test_branch_continues_from_the_clicked_picture(tmp_path: Path) -> None:
    first, second = tmp_path / "first.png", tmp_path / "second.png"
    Image.new("RGB", (8, 8), "red").save(first)
    Image.new("RGB", (8, 8), "blue").save(second)
    history = [*convo({"path": str(first)}),
               {"role": "user", "content": "make it night"},
               {"role": "assistant", "content": ["Edited.", {"path": str(second)}]}]
    r = roots(tmp_path)
    latest = source_for(history, None, r)
    assert latest is not None and latest.path == str(second)
    branched = source_for(history, 1, r)
    assert branched is not None and branched.path == str(first)
    turn, source = turn_for("make it snow", [], history, 1, roots=r, max_bytes=MAX)
    assert source == branched
    assert turn.context_image is not None and turn.context_image.data == first.read_bytes()
    with pytest.raises(LostImage):           # the clicked message holds no picture (any more)
        source_for(history, 2, r)
    with pytest.raises(LostImage):
        source_for(history, 9, r)


def test_an_attached_picture_wins_over_the_branch(tmp_path: Path, png: Path) -> None:
    other = tmp_path / "other.png"
    Image.new("RGB", (8, 8), "green").save(other)
    history = convo({"path": str(png)})
    turn, source = turn_for("make it night", [str(other)], history, 1, roots=roots(tmp_path),
                            max_bytes=MAX)
    assert source is None and turn.source_image is not None
    assert turn.source_image.data == other.read_bytes()
    two, _ = turn_for("together", [str(other), str(png)], history, None, roots=roots(tmp_path),
                      max_bytes=MAX)
    assert route(two).action == "multiref"
    with pytest.raises(LostImage):
        turn_for("x", [str(png)] * 4, history, None, roots=roots(tmp_path), max_bytes=MAX)


def test_item_ids_from_reply_names() -> None:
    assert item_id_of("banana-item-0a1b2c.png") == "0a1b2c"
    assert item_id_of("/cache/x/banana-item-0a1b-2c.png") == "0a1b-2c"
    assert item_id_of("result.png") is None
    assert item_id_of("banana-generate-1234.png") is None      # the library's own file name
    assert item_id_of("banana-item-../../x.png") is None

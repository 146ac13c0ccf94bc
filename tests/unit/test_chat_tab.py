"""The Chat tab's click on a picture: an earlier one starts a branch, the latest one does not;
clicking text changes nothing."""

from __future__ import annotations

import secrets
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder
from PIL import Image

from ui.chat_tab import BRANCH_NOTE, LATEST_NOTE, pick


def test_a_click_on_an_earlier_picture_branches_from_it() -> None:
    folder = Path(get_upload_folder()) / f"test-chat-{secrets.token_hex(4)}"
    folder.mkdir(parents=True)
    first, second = folder / "first.png", folder / "second.png"
    Image.new("RGB", (8, 8), "red").save(first)
    Image.new("RGB", (8, 8), "blue").save(second)
    history = [{"role": "user", "content": [{"type": "text", "text": "a fox"}]},
               {"role": "assistant", "content": [{"type": "text", "text": "Generated."},
                                                 {"type": "file", "file": {"path": str(first)}}]},
               {"role": "user", "content": [{"type": "text", "text": "make it night"}]},
               {"role": "assistant", "content": [{"type": "file", "file": {"path": str(second)}}]}]

    def click(index: object) -> tuple[object, ...]:
        return pick(history, gr.SelectData(None, {"index": index, "value": None}))

    assert click(1) == (1, str(first), BRANCH_NOTE)
    assert click([1, 1]) == (1, str(first), BRANCH_NOTE)
    assert click(3) == (None, str(second), LATEST_NOTE)     # the latest: no branch
    skipped = click(0)                                       # text: nothing changes
    assert all(isinstance(value, type(gr.skip())) for value in skipped)

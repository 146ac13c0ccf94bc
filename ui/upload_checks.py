"""Every image slot checks its file the moment it is uploaded (issue 10, items 7 and 8): a
file that is not a picture, a damaged one, a decompression bomb or one over the byte limit
gets the studio's own sentence in the tab (never Gradio's error with a server path) and the
slot is emptied, so nothing broken waits there for Run. What is checked is
`backend.operations.images.check_upload`, the same check the API makes.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from backend.operations.images import check_upload
from backend.requests import InvalidRequest
from backend.settings import Settings
from ui.live import message_md
from ui.tabspec import Component, TabSpec
from ui.upload import StudioImage


def upload_refusal(path: str | None, settings: Settings) -> str | None:
    """The sentence that refuses the uploaded file at `path`, or None when it can be used."""
    if not path:
        return None
    try:
        data = Path(path).read_bytes()
    except OSError:
        return "The upload did not arrive; add the picture again."
    try:
        check_upload(data, settings)
    except InvalidRequest as exc:
        return exc.message
    return None


def checked_slots(tab: TabSpec) -> list[StudioImage]:
    """The tab's plain upload slots (a mask editor is checked when it runs)."""
    return [c for c in tab.sources if isinstance(c, StudioImage)]


def wire_upload_checks(settings: Settings, tab: TabSpec) -> None:
    message = tab.controls.message
    for slot in checked_slots(tab):
        def on_upload(path: str | None, _slot: StudioImage = slot) -> dict[Component, object]:
            refusal = upload_refusal(path, settings)
            if refusal is None:
                return {message: gr.skip()}
            return {_slot: None, message: message_md(refusal, "error")}

        slot.upload(on_upload, [slot], [slot, message], queue=False, show_progress="hidden",
                    api_visibility="private")

"""Masks that move between tabs (issue 14 item 5): Region edit's detected mask ("Edit this
mask in Inpaint") and a Remove background cut-out's alpha ("Use as mask") land in the Inpaint
editor on the picture they were made from, ready to touch up (brush, eraser, invert, grow,
feather: Inpaint's own tools) and run.

The picked result of the tab is read from the page's state (ui/pages.Shown), not from the
browser: nothing is uploaded again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import gradio as gr
from PIL import Image

from ui.identity import visitor_for
from ui.imaging import mask_layer
from ui.live import message_md
from ui.pages import SessionRefused, Shown
from ui.tabspec import Component, Shared, TabSpec

INPAINT = "inpaint"
MaskSource = Literal["mask", "alpha"]


@dataclass(frozen=True)
class MaskMove:
    """A tab's button that sends its picked result's mask to Inpaint: `source` "mask" is the
    mask shown beside the result, "alpha" the result's transparency."""

    button: gr.Button
    source: MaskSource


def _open(value: str | Image.Image) -> Image.Image:
    if isinstance(value, Image.Image):
        return value
    with Image.open(value) as image:
        image.load()
        return image


def mask_of(shown: Shown, source: MaskSource) -> Image.Image | None:
    """The mask (L, 255 = change) a result carries: its detected mask or its alpha."""
    if source == "mask":
        return _open(shown.mask).convert("L") if shown.mask is not None else None
    result = _open(shown.result)
    return result.getchannel("A") if "A" in result.getbands() else None


def editor_with_mask(shown: Shown, source: MaskSource) -> dict[str, Any] | str:
    """The Inpaint editor's value (the input picture with the mask painted on its layer), or
    the sentence that says why there is none."""
    if shown.before is None:
        return "The picture this result was made from is no longer available."
    try:
        mask = mask_of(shown, source)
        with Image.open(shown.before) as picture:
            size = picture.size
    except OSError:
        return "This result's files are gone (the library pruned them); run the tab again."
    if mask is None:
        return "This result has no mask to use."
    if mask.size != size:     # a result capped below a very large input's size
        mask = mask.resize(size, Image.Resampling.BILINEAR)
    return {"background": shown.before, "layers": [mask_layer(mask)], "composite": None}


def wire_mask_moves(
    shared: Shared, tabs_by_mode: Mapping[str, TabSpec], tabs: gr.Tabs, current_mode: gr.State
) -> None:
    inpaint = tabs_by_mode.get(INPAINT)
    if inpaint is None or inpaint.editor is None or shared.browser is None:
        return
    browser = shared.browser
    editor = inpaint.editor.shown
    for tab in tabs_by_mode.values():
        if tab.mask_move is None:
            continue
        move: MaskMove = tab.mask_move

        def send(browser_id: object, request: gr.Request, _tab: TabSpec = tab,
                 _move: MaskMove = move) -> dict[Component, Any]:
            msg = _tab.controls.message
            visitor = visitor_for(shared.ctx.settings.library, request, browser_id)
            try:
                state = shared.pages.enter(visitor).tab(_tab.name)
            except SessionRefused as exc:
                return {msg: message_md(exc.message, "error")}
            if not state.shown:
                return {msg: message_md("Nothing to send yet: run this tab first.", "info")}
            shown = state.shown[min(state.picked, len(state.shown) - 1)]
            value = editor_with_mask(shown, _move.source)
            if isinstance(value, str):
                return {msg: message_md(value, "error")}
            what = "mask" if _move.source == "mask" else "cut-out's outline"
            return {
                editor: value, tabs: gr.Tabs(selected=INPAINT), current_mode: INPAINT,
                inpaint.controls.message: message_md(
                    f"The picture and the {_tab.mode.title} {what} are in the editor: touch "
                    "up the mask, say what to put there, and run.", "ok"),
            }

        move.button.click(send, [browser], [editor, tabs, current_mode, inpaint.controls.message,
                                            tab.controls.message],
                          queue=False, show_progress="hidden", api_visibility="private")

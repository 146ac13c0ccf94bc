"""Inpaint: paint where to change, say what to put there. Only painted pixels change.

The mask is drawn on one fixed layer of an ImageEditor whose canvas takes the image's own
size (fixed_canvas=False) and cannot be cropped or resized, so the mask lines up pixel for
pixel with the picture the request sends.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from PIL import Image

from ui.imaging import clear_editor_mask, editor_mask, invert_editor_mask, mask_coverage
from ui.layout import (
    advanced_controls,
    mask_edge_sliders,
    mask_editor,
    output_panel,
    run_controls,
)
from ui.prompt_tools import prompt_tools
from ui.tabspec import Component, Shared, Spec, TabSpec, Values


def build(shared: Shared, mode: Spec) -> TabSpec:
    name = mode.name
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            # A short label: the editor's toolbar sits on the label's line and covered a long one.
            editor = mask_editor(f"{name}_editor", "Picture")
            with gr.Row(equal_height=True, elem_classes=["mask-tools"]):
                with gr.Column(scale=4, min_width=220):
                    with gr.Row(elem_classes=["tight-row"]):
                        clear = gr.Button("Clear mask", size="sm", elem_id=f"{name}_clear")
                        invert = gr.Button("Invert mask", size="sm", elem_id=f"{name}_invert")
                        check = gr.Button("Show mask", size="sm", elem_id=f"{name}_show_mask")
                    coverage = gr.Markdown(
                        "Paint over what should change; the eraser takes paint away.",
                        elem_id=f"{name}_coverage",
                        elem_classes=["hint"],
                    )
                mask_view = gr.Image(
                    label="Mask (white = change)", show_label=False, type="pil",
                    image_mode="L", format="png", interactive=False, height=96, min_width=96,
                    scale=1, buttons=[], container=False, elem_id=f"{name}_mask_preview",
                )
            prompt = gr.Textbox(
                label="What to put there",
                lines=2,
                placeholder="a bouquet of sunflowers in a glass vase",
                elem_id=f"{name}_prompt",
            )
            tools = prompt_tools(shared.ctx.settings.library.data_dir, name, prompt)
            controls = run_controls(name, "Inpaint")
            with gr.Accordion("Advanced", open=False):
                grow, feather = mask_edge_sliders(mode)
                adv = advanced_controls(shared.ctx, mode)
        with gr.Column(scale=3, min_width=400):
            panel = output_panel(name, shared.ctx.registry, compare=True)

    def show_mask(value: dict[str, Any] | None) -> tuple[Image.Image | None, str]:
        mask = editor_mask(value)
        if mask is None:
            return None, "No picture yet."
        share = mask_coverage(mask)
        if share == 0:
            return None, "No mask yet: paint over the picture."   # and no stale thumbnail
        # Full resolution: the tests check the stroke against exactly the mask that ran.
        return mask, f"Mask: {share:.1%} of the picture"

    # Not on every stroke: a live .change makes the editor upload the whole canvas (picture
    # included) after each stroke. The preview refreshes on demand, on invert/clear, and
    # with each run (which sends the canvas anyway). Each of these reads the editor through
    # its `sent` twin and writes it through `shown` (ui/layout.MaskEditor).
    quiet = {"show_progress": "hidden", "api_visibility": "private"}
    editor.relay(check.click).then(show_mask, editor.sent, [mask_view, coverage], **quiet)

    def clear_mask(value: dict[str, Any] | None) -> tuple[object, ...]:
        return clear_editor_mask(value), *show_mask(clear_editor_mask(value))

    def invert_mask(value: dict[str, Any] | None) -> tuple[object, ...]:
        inverted = invert_editor_mask(value)
        return inverted, *show_mask(inverted)

    outputs = [editor.shown, mask_view, coverage]
    editor.relay(clear.click).then(clear_mask, editor.sent, outputs, **quiet)
    editor.relay(invert.click).then(invert_mask, editor.sent, outputs, **quiet)

    def on_run(values: Values) -> dict[Component, object]:
        # The run sends the canvas anyway: refresh the mask preview with what it painted.
        preview, text = show_mask(values.get("image"))
        return {mask_view: preview, coverage: text}

    return TabSpec(
        mode=mode,
        # The editor is both the picture and the mask painted over it.
        fields={"image": editor.sent, "mask": editor.sent, "prompt": prompt, "grow": grow,
                "feather": feather, **adv.fields()},
        controls=controls,
        panel=panel,
        advanced=adv,
        sources=[editor.shown],
        editor_sources=frozenset({0}),
        extra_outputs=[mask_view, coverage],
        on_run=on_run,
        editor=editor,
        prompt_tools=tools,
    )

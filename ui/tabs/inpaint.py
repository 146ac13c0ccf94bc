"""Inpaint: paint where to change, say what to put there. Only painted pixels change.

The mask is drawn on one fixed layer of an ImageEditor whose canvas takes the image's own
size (fixed_canvas=False) and cannot be cropped or resized, so the mask lines up pixel for
pixel with the picture the request sends.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from backend.operations import InpaintRequest
from backend.operations.base import InvalidRequest
from ui.controls import advanced_controls, mask_edge_sliders, output_panel, run_controls
from ui.imaging import (
    MASK_ALPHA,
    MASK_RGB,
    clear_editor_mask,
    editor_background,
    editor_mask,
    invert_editor_mask,
    mask_coverage,
)
from ui.widgets import Built, Shared, TabSpec, common_values

MODE = "inpaint"
BRUSH_COLOUR = (f"rgb({MASK_RGB[0]}, {MASK_RGB[1]}, {MASK_RGB[2]})", round(MASK_ALPHA / 255, 2))


def build(shared: Shared) -> TabSpec:
    sampling = shared.ctx.settings.sampling
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            editor = gr.ImageEditor(
                label="Picture — paint over what should change",
                type="pil",
                image_mode="RGBA",
                format="png",
                sources=["upload", "clipboard"],
                transforms=(),
                layers=gr.LayerOptions(allow_additional_layers=False, layers=["mask"]),
                brush=gr.Brush(
                    default_size="auto", colors=[BRUSH_COLOUR], default_color=BRUSH_COLOUR,
                    color_mode="fixed",
                ),
                eraser=gr.Eraser(default_size="auto"),
                fixed_canvas=False,
                height=440,
                elem_id=f"{MODE}_editor",
            )
            with gr.Row(equal_height=True, elem_classes=["mask-tools"]):
                with gr.Column(scale=4, min_width=220):
                    with gr.Row(elem_classes=["tight-row"]):
                        clear = gr.Button("Clear mask", size="sm", elem_id=f"{MODE}_clear")
                        invert = gr.Button("Invert mask", size="sm", elem_id=f"{MODE}_invert")
                        check = gr.Button("Show mask", size="sm", elem_id=f"{MODE}_show_mask")
                    coverage = gr.Markdown(
                        "Paint with the brush; the eraser takes paint away.",
                        elem_id=f"{MODE}_coverage",
                        elem_classes=["hint"],
                    )
                mask_view = gr.Image(
                    label="Mask (white = change)", show_label=False, type="pil",
                    image_mode="L", format="png", interactive=False, height=96, min_width=96,
                    scale=1, buttons=[], container=False, elem_id=f"{MODE}_mask_preview",
                )
            prompt = gr.Textbox(
                label="What to put there",
                lines=2,
                placeholder="a bouquet of sunflowers in a glass vase",
                elem_id=f"{MODE}_prompt",
            )
            controls = run_controls(MODE, "Inpaint")
            with gr.Accordion("Advanced", open=False):
                grow, feather = mask_edge_sliders(MODE, grow=4, feather=0)
                negative = gr.Textbox(label="Negative prompt", lines=2, elem_id=f"{MODE}_negative")
                adv = advanced_controls(
                    shared.ctx, MODE, steps=sampling.edit_steps, cfg=sampling.edit_cfg
                )
        with gr.Column(scale=3, min_width=400):
            panel = output_panel(MODE, compare=True)

    def show_mask(value: dict[str, Any] | None) -> tuple[Any, str]:
        mask = editor_mask(value)
        if mask is None:
            return None, "No picture yet."
        share = mask_coverage(mask)
        text = "No mask yet: paint over the picture." if share == 0 else f"Mask: {share:.1%} of the picture"
        # Full resolution: the tests check the stroke against exactly the mask that ran.
        return mask, text

    # Not on every stroke: a live .change makes the editor upload the whole canvas (picture
    # included) after each stroke. The preview refreshes on demand, on invert/clear, and
    # with each run (which sends the canvas anyway).
    quiet = {"show_progress": "hidden", "api_visibility": "private"}
    check.click(show_mask, editor, [mask_view, coverage], **quiet)

    def clear_mask(value: dict[str, Any] | None):
        return clear_editor_mask(value), *show_mask(clear_editor_mask(value))

    def invert_mask(value: dict[str, Any] | None):
        inverted = invert_editor_mask(value)
        return inverted, *show_mask(inverted)

    clear.click(clear_mask, editor, [editor, mask_view, coverage], **quiet)
    invert.click(invert_mask, editor, [editor, mask_view, coverage], **quiet)

    def make(values: list[Any]) -> Built:
        common, (value, text, g, f, neg) = common_values(adv, values)
        background = editor_background(value)
        if background is None:
            raise InvalidRequest("Add a picture first, then paint where it should change.", "image")
        mask = editor_mask(value)
        if mask is None or mask_coverage(mask) == 0:
            raise InvalidRequest("Paint over the part of the picture that should change.", "mask")
        request = InpaintRequest(
            image=background, mask=mask, prompt=text or "", grow=int(g), feather=int(f),
            negative_prompt=neg or "", **common,
        )
        params = {"prompt": text, "grow": int(g), "feather": int(f), "negative_prompt": neg,
                  **common}
        preview, text = show_mask(value)
        return Built(request, params, (background,), {mask_view: preview, coverage: text})

    return TabSpec(
        mode=MODE,
        inputs=[*adv.inputs(), editor, prompt, grow, feather, negative],
        build=make,
        controls=controls,
        panel=panel,
        advanced=adv,
        fields={"prompt": prompt, "grow": grow, "feather": feather, "negative_prompt": negative,
                **adv.fields()},
        sources=[editor],
        editor_sources=frozenset({0}),
        extra_outputs=[mask_view, coverage],
    )

"""Multi-ref: combine up to three reference pictures with one instruction, in order."""

from __future__ import annotations

from typing import Any

import gradio as gr

from backend.operations import MultiRefRequest
from ui.controls import advanced_controls, output_panel, run_controls, upload_image
from ui.widgets import Built, Shared, TabSpec, common_values, read_upload

MODE = "multiref"
SLOT_LABELS = ("Reference 1 (main)", "Reference 2", "Reference 3")


def build(shared: Shared) -> TabSpec:
    sampling = shared.ctx.settings.sampling
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            # The main reference gets the room: it sets the canvas of the result.
            def slot(i: int, height: int) -> gr.Image:
                return upload_image(f"{MODE}_image{i + 1}", SLOT_LABELS[i], height, min_width=120)

            slots = [slot(0, 230)]
            with gr.Row():
                slots += [slot(1, 170), slot(2, 170)]
            gr.Markdown(
                "The main reference sets the canvas; refer to the others as "
                "“picture 2” and “picture 3” in the instruction.",
                elem_classes=["hint"],
            )
            prompt = gr.Textbox(
                label="Instruction",
                lines=3,
                placeholder="The woman from picture 1 wearing the jacket from picture 2, "
                "standing in the room from picture 3",
                elem_id=f"{MODE}_prompt",
            )
            controls = run_controls(MODE, "Combine")
            with gr.Accordion("Advanced", open=False):
                negative = gr.Textbox(label="Negative prompt", lines=2, elem_id=f"{MODE}_negative")
                adv = advanced_controls(
                    shared.ctx, MODE, steps=sampling.edit_steps, cfg=sampling.edit_cfg
                )
        with gr.Column(scale=3, min_width=400):
            panel = output_panel(MODE, compare=True)

    def make(values: list[Any]) -> Built:
        common, (first, second, third, text, neg) = common_values(adv, values)
        # Order matters (picture 1, 2, 3): an empty middle slot closes the gap.
        images = tuple(read_upload(p) for p in (first, second, third) if p is not None)
        request = MultiRefRequest(
            images=images, prompt=text or "", negative_prompt=neg or "", **common
        )
        params = {"prompt": text, "negative_prompt": neg, **common}
        return Built(request, params, images)

    return TabSpec(
        mode=MODE,
        inputs=[*adv.inputs(), *slots, prompt, negative],
        build=make,
        controls=controls,
        panel=panel,
        advanced=adv,
        fields={"prompt": prompt, "negative_prompt": negative, **adv.fields()},
        sources=slots,
    )

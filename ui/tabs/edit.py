"""Edit: change a picture with an instruction (Qwen-Image-Edit)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from backend.operations import EditRequest
from ui.controls import advanced_controls, output_panel, run_controls, upload_image
from ui.widgets import Built, Shared, TabSpec, common_values, read_upload

MODE = "edit"


def build(shared: Shared) -> TabSpec:
    sampling = shared.ctx.settings.sampling
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            image = upload_image(f"{MODE}_image", "Image to edit", 340)
            prompt = gr.Textbox(
                label="Instruction",
                lines=3,
                placeholder="Make it golden hour; replace the sign's text with “BANANA”",
                elem_id=f"{MODE}_prompt",
            )
            controls = run_controls(MODE, "Edit")
            with gr.Accordion("Advanced", open=False):
                negative = gr.Textbox(label="Negative prompt", lines=2, elem_id=f"{MODE}_negative")
                adv = advanced_controls(
                    shared.ctx, MODE, steps=sampling.edit_steps, cfg=sampling.edit_cfg
                )
        with gr.Column(scale=3, min_width=400):
            panel = output_panel(MODE, compare=True)

    def make(values: list[Any]) -> Built:
        common, (path, text, neg) = common_values(adv, values)
        img = read_upload(path)
        request = EditRequest(image=img, prompt=text or "", negative_prompt=neg or "", **common)
        params = {"prompt": text, "negative_prompt": neg, **common}
        return Built(request, params, (img,) if img is not None else ())

    return TabSpec(
        mode=MODE,
        inputs=[*adv.inputs(), image, prompt, negative],
        build=make,
        controls=controls,
        panel=panel,
        advanced=adv,
        fields={"prompt": prompt, "negative_prompt": negative, **adv.fields()},
        sources=[image],
    )

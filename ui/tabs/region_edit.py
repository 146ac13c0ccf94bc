"""Region edit: name a region in words, the studio finds it (Florence-2 + SAM 2) and edits
only there. The detected mask is shown beside the result."""

from __future__ import annotations

from typing import Any

import gradio as gr

from backend.operations import RegionEditRequest
from ui.controls import (
    advanced_controls,
    mask_edge_sliders,
    output_panel,
    run_controls,
    upload_image,
)
from ui.widgets import Built, Shared, TabSpec, common_values, read_upload

MODE = "region_edit"


def build(shared: Shared) -> TabSpec:
    sampling = shared.ctx.settings.sampling
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            image = upload_image(f"{MODE}_image", "Picture", 320)
            region = gr.Textbox(
                label="Region",
                placeholder="the red car",
                info="Words that name what to change; the mask is found for you.",
                elem_id=f"{MODE}_region",
            )
            prompt = gr.Textbox(
                label="Instruction",
                lines=2,
                placeholder="make it a vintage yellow taxi",
                elem_id=f"{MODE}_prompt",
            )
            controls = run_controls(MODE, "Edit region")
            with gr.Accordion("Advanced", open=False):
                grow, feather = mask_edge_sliders(MODE, grow=8, feather=8)
                negative = gr.Textbox(label="Negative prompt", lines=2, elem_id=f"{MODE}_negative")
                adv = advanced_controls(
                    shared.ctx, MODE, steps=sampling.edit_steps, cfg=sampling.edit_cfg
                )
        with gr.Column(scale=3, min_width=400):
            panel = output_panel(MODE, mask_label="Detected mask", compare=True)

    def make(values: list[Any]) -> Built:
        common, (path, where, text, g, f, neg) = common_values(adv, values)
        img = read_upload(path)
        request = RegionEditRequest(
            image=img, region=(where or "").strip(), prompt=text or "", grow=int(g),
            feather=int(f), negative_prompt=neg or "", **common,
        )
        params = {"region": where, "prompt": text, "grow": int(g), "feather": int(f),
                  "negative_prompt": neg, **common}
        return Built(request, params, (img,) if img is not None else ())

    return TabSpec(
        mode=MODE,
        inputs=[*adv.inputs(), image, region, prompt, grow, feather, negative],
        build=make,
        controls=controls,
        panel=panel,
        advanced=adv,
        fields={"region": region, "prompt": prompt, "grow": grow, "feather": feather,
                "negative_prompt": negative, **adv.fields()},
        sources=[image],
    )

"""Region edit: name a region in words, the studio finds it (Florence-2 + SAM 2) and edits
only there. The detected mask is shown beside the result."""

from __future__ import annotations

import gradio as gr

from ui.layout import (
    advanced_controls,
    mask_edge_sliders,
    output_panel,
    run_controls,
    upload_image,
)
from ui.mask_moves import MaskMove
from ui.prompt_tools import prompt_tools
from ui.tabspec import Shared, Spec, TabSpec


def build(shared: Shared, mode: Spec) -> TabSpec:
    name = mode.name
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            image = upload_image(f"{name}_image", "Picture", 320)
            region = gr.Textbox(
                label="Region",
                placeholder="the red car",
                info="Words that name what to change; the mask is found for you.",
                elem_id=f"{name}_region",
            )
            prompt = gr.Textbox(
                label="Instruction",
                lines=2,
                placeholder="make it a vintage yellow taxi",
                elem_id=f"{name}_prompt",
            )
            tools = prompt_tools(shared.ctx.settings.library.data_dir, name, prompt)
            controls = run_controls(name, "Edit region")
            with gr.Accordion("Advanced", open=False):
                grow, feather = mask_edge_sliders(mode)
                adv = advanced_controls(shared.ctx, mode)
        with gr.Column(scale=3, min_width=400):
            panel = output_panel(name, shared.ctx.registry, mask_label="Detected mask",
                                 compare=True)
            to_inpaint = gr.Button("Edit this mask in Inpaint", size="sm",
                                   elem_id=f"{name}_mask_to_inpaint")
    return TabSpec(
        mode=mode,
        fields={"image": image, "region": region, "prompt": prompt, "grow": grow,
                "feather": feather, **adv.fields()},
        controls=controls,
        panel=panel,
        advanced=adv,
        sources=[image],
        mask_move=MaskMove(to_inpaint, "mask"),
        prompt_tools=tools,
    )

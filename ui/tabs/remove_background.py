"""Remove background: a cut-out with a transparent background (BiRefNet)."""

from __future__ import annotations

import gradio as gr

from ui.layout import advanced_controls, output_panel, run_controls, upload_image
from ui.mask_moves import MaskMove
from ui.tabspec import Shared, Spec, TabSpec


def build(shared: Shared, mode: Spec) -> TabSpec:
    name = mode.name
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            image = upload_image(f"{name}_image", "Picture", 380)
            gr.Markdown(
                "The result keeps full resolution, with a transparent background (PNG).",
                elem_classes=["hint"],
            )
            controls = run_controls(name, "Remove background")
            with gr.Accordion("Advanced", open=False):
                adv = advanced_controls(shared.ctx, mode)
        with gr.Column(scale=3, min_width=400):
            panel = output_panel(name, shared.ctx.registry, compare=True)
            to_inpaint = gr.Button("Use as mask (in Inpaint)", size="sm",
                                   elem_id=f"{name}_mask_to_inpaint")
    return TabSpec(
        mode=mode,
        fields={"image": image, **adv.fields()},
        controls=controls,
        panel=panel,
        advanced=adv,
        sources=[image],
        mask_move=MaskMove(to_inpaint, "alpha"),
    )

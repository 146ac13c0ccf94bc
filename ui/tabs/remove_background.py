"""Remove background: a cut-out with a transparent background (BiRefNet)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from backend.operations import RemoveBackgroundRequest
from ui.controls import advanced_controls, output_panel, run_controls
from ui.widgets import Built, Shared, TabSpec, common_values

MODE = "remove_background"


def build(shared: Shared) -> TabSpec:
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            image = gr.Image(
                label="Picture",
                type="pil",
                image_mode=None,
                sources=["upload", "clipboard"],
                height=380,
                elem_id=f"{MODE}_image",
            )
            gr.Markdown(
                "The result keeps full resolution, with a transparent background (PNG).",
                elem_classes=["hint"],
            )
            controls = run_controls(MODE, "Remove background")
            with gr.Accordion("Advanced", open=False):
                adv = advanced_controls(shared.ctx, MODE, steps=None, cfg=None, sampler=False)
        with gr.Column(scale=3, min_width=400):
            panel = output_panel(MODE, compare=True)

    def make(values: list[Any]) -> Built:
        common, (img,) = common_values(adv, values)
        request = RemoveBackgroundRequest(image=img, **common)
        return Built(request, {"variant": common.get("variant")}, (img,) if img is not None else ())

    return TabSpec(
        mode=MODE,
        inputs=[*adv.inputs(), image],
        build=make,
        controls=controls,
        panel=panel,
        advanced=adv,
        fields={"variant": adv.variant},
        sources=[image],
    )

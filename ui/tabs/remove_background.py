"""Remove background: a cut-out with a transparent background (BiRefNet)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from backend.operations import RemoveBackgroundRequest
from ui.controls import advanced_controls, output_panel, run_controls, upload_image
from ui.widgets import Built, Shared, TabSpec, common_values, read_upload

MODE = "remove_background"


def build(shared: Shared) -> TabSpec:
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            image = upload_image(f"{MODE}_image", "Picture", 380)
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
        common, (path,) = common_values(adv, values)
        img = read_upload(path)
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

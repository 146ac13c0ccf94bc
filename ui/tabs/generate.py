"""Generate: text to image at one of Qwen-Image's aspect presets."""

from __future__ import annotations

from typing import Any

import gradio as gr

from backend.operations import GenerateRequest
from ui.controls import advanced_controls, output_panel, run_controls
from ui.imaging import DEFAULT_SIZE_PRESET, SIZE_PRESETS
from ui.widgets import Built, Shared, TabSpec, common_values

MODE = "generate"
CUSTOM = "Custom"


def preset_for(width: int, height: int) -> str:
    for label, size in SIZE_PRESETS.items():
        if size == (width, height):
            return label
    return CUSTOM


def build(shared: Shared) -> TabSpec:
    sampling = shared.ctx.settings.sampling
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            prompt = gr.Textbox(
                label="Prompt",
                lines=5,
                max_lines=12,
                placeholder="A banana-yellow vintage scooter parked on a rainy Lisbon street, "
                "neon reflections, 35 mm photo",
                elem_id=f"{MODE}_prompt",
            )
            size = gr.Dropdown(
                [*SIZE_PRESETS, CUSTOM],
                value=DEFAULT_SIZE_PRESET,
                label="Size",
                info="Qwen-Image's native aspect presets (multiples of 16)",
                elem_id=f"{MODE}_size",
            )
            controls = run_controls(MODE, "Generate")
            # Open here: the column has room, and size and steps matter most when generating.
            with gr.Accordion("Advanced", open=True):
                w0, h0 = SIZE_PRESETS[DEFAULT_SIZE_PRESET]
                with gr.Row():
                    width = gr.Slider(256, 2048, value=w0, step=16, label="Width", elem_id=f"{MODE}_width")
                    height = gr.Slider(256, 2048, value=h0, step=16, label="Height", elem_id=f"{MODE}_height")
                negative = gr.Textbox(label="Negative prompt", lines=2, elem_id=f"{MODE}_negative")
                adv = advanced_controls(
                    shared.ctx, MODE, steps=sampling.generate_steps, cfg=sampling.generate_cfg
                )
        with gr.Column(scale=3, min_width=400):
            panel = output_panel(MODE)

    def on_size(label: str) -> tuple[Any, Any]:
        if label not in SIZE_PRESETS:
            return gr.skip(), gr.skip()
        w, h = SIZE_PRESETS[label]
        return w, h

    size.change(on_size, size, [width, height], queue=False, show_progress="hidden",
                api_visibility="private")

    def on_manual(w: float, h: float) -> str:
        return preset_for(int(w), int(h))

    for slider in (width, height):
        slider.change(on_manual, [width, height], size, queue=False, show_progress="hidden",
                       api_visibility="private")

    def on_variant(name: str) -> tuple[int, float]:
        # The 4-step turbo UNet wants few steps and no CFG; everything else the usual ones.
        if name == "turbo":
            return sampling.turbo_steps, sampling.turbo_cfg
        return sampling.generate_steps, sampling.generate_cfg

    adv.variant.change(on_variant, adv.variant, [adv.steps, adv.cfg], queue=False,
                       show_progress="hidden", api_visibility="private")

    def make(values: list[Any]) -> Built:
        common, (text, neg, w, h) = common_values(adv, values)
        request = GenerateRequest(
            prompt=text or "", width=int(w), height=int(h), negative_prompt=neg or "", **common
        )
        params = {"prompt": text, "negative_prompt": neg, **common}
        return Built(request, params)

    return TabSpec(
        mode=MODE,
        inputs=[*adv.inputs(), prompt, negative, width, height],
        build=make,
        controls=controls,
        panel=panel,
        advanced=adv,
        fields={"prompt": prompt, "negative_prompt": negative, "width": width, "height": height,
                **adv.fields()},
    )

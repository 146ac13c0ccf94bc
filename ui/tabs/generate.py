"""Generate: text to image at one of Qwen-Image's aspect presets."""

from __future__ import annotations

import gradio as gr

from ui.imaging import DEFAULT_SIZE_PRESET, SIZE_PRESETS
from ui.layout import advanced_controls, input_slider, output_panel, run_controls
from ui.prompt_tools import prompt_tools
from ui.tabspec import Shared, Spec, TabSpec

CUSTOM = "Custom"


def preset_for(width: int, height: int) -> str:
    for label, size in SIZE_PRESETS.items():
        if size == (width, height):
            return label
    return CUSTOM


def build(shared: Shared, mode: Spec) -> TabSpec:
    name = mode.name
    sampling = shared.ctx.settings.sampling
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            prompt = gr.Textbox(
                label="Prompt",
                lines=5,
                max_lines=12,
                placeholder="A banana-yellow vintage scooter parked on a rainy Lisbon street, "
                "neon reflections, 35 mm photo",
                elem_id=f"{name}_prompt",
            )
            tools = prompt_tools(shared.ctx.settings.library.data_dir, name, prompt)
            size = gr.Dropdown(
                [*SIZE_PRESETS, CUSTOM],
                value=DEFAULT_SIZE_PRESET,
                label="Size",
                info="Qwen-Image's native aspect presets (multiples of 16)",
                elem_id=f"{name}_size",
            )
            controls = run_controls(name, "Generate")
            # Open here: the column has room, and size and steps matter most when generating.
            with gr.Accordion("Advanced", open=True):
                w0, h0 = SIZE_PRESETS[DEFAULT_SIZE_PRESET]
                with gr.Row():
                    width = input_slider(mode, "width", value=w0)
                    height = input_slider(mode, "height", value=h0)
                adv = advanced_controls(shared.ctx, mode)
        with gr.Column(scale=3, min_width=400):
            panel = output_panel(name, shared.ctx.registry)

    def on_size(label: str) -> tuple[object, object]:
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

    def on_variant(variant: str) -> tuple[int, float]:
        # The 4-step turbo UNet wants few steps and no CFG; everything else the usual ones.
        if variant == "turbo":
            return sampling.turbo_steps, sampling.turbo_cfg
        return sampling.generate_steps, sampling.generate_cfg

    adv.variant.change(on_variant, adv.variant, [adv.steps, adv.cfg], queue=False,
                       show_progress="hidden", api_visibility="private")

    return TabSpec(
        mode=mode,
        fields={"prompt": prompt, "width": width, "height": height, **adv.fields()},
        controls=controls,
        panel=panel,
        advanced=adv,
        prompt_tools=tools,
    )

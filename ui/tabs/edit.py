"""Edit: change a picture with an instruction (Qwen-Image-Edit)."""

from __future__ import annotations

import gradio as gr

from ui.generic_tab import choice_radio
from ui.layout import advanced_controls, output_panel, run_controls, upload_image
from ui.prompt_tools import prompt_tools
from ui.tabspec import Shared, Spec, TabSpec


def build(shared: Shared, mode: Spec) -> TabSpec:
    name = mode.name
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            image = upload_image(f"{name}_image", "Image to edit", 340)
            prompt = gr.Textbox(
                label="Instruction",
                lines=3,
                placeholder="Make it golden hour; replace the sign's text with “BANANA”",
                elem_id=f"{name}_prompt",
            )
            tools = prompt_tools(shared.ctx.settings.library.data_dir, name, prompt)
            output_size = choice_radio(mode, "output_size")
            controls = run_controls(name, "Edit")
            with gr.Accordion("Advanced", open=False):
                adv = advanced_controls(shared.ctx, mode)
        with gr.Column(scale=3, min_width=400):
            panel = output_panel(name, shared.ctx.registry, compare=True)
    return TabSpec(
        mode=mode,
        fields={"image": image, "prompt": prompt, "output_size": output_size, **adv.fields()},
        controls=controls,
        panel=panel,
        advanced=adv,
        sources=[image],
        prompt_tools=tools,
    )

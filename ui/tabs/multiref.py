"""Multi-ref: combine up to three reference pictures with one instruction, in order."""

from __future__ import annotations

import gradio as gr

from ui.generic_tab import choice_radio
from ui.layout import advanced_controls, output_panel, run_controls, upload_image
from ui.prompt_tools import prompt_tools
from ui.tabspec import Shared, Spec, TabSpec

SLOT_LABELS = ("Reference 1", "Reference 2", "Reference 3")


def build(shared: Shared, mode: Spec) -> TabSpec:
    name = mode.name
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            # The main reference gets the room: it sets the canvas of the result.
            def slot(i: int, height: int) -> gr.Image:
                return upload_image(f"{name}_image{i + 1}", SLOT_LABELS[i], height, min_width=120)

            slots = [slot(0, 230)]
            with gr.Row():
                slots += [slot(1, 170), slot(2, 170)]
            main = choice_radio(mode, "main")
            gr.Markdown(
                "The main picture sets the canvas and is “picture 1” in the instruction; "
                "the others follow in order (“picture 2”, “picture 3”).",
                elem_classes=["hint"],
            )
            prompt = gr.Textbox(
                label="Instruction",
                lines=3,
                placeholder="The woman from picture 1 wearing the jacket from picture 2, "
                "standing in the room from picture 3",
                elem_id=f"{name}_prompt",
            )
            tools = prompt_tools(shared.ctx.settings.library.data_dir, name, prompt)
            controls = run_controls(name, "Combine")
            with gr.Accordion("Advanced", open=False):
                adv = advanced_controls(shared.ctx, mode)
        with gr.Column(scale=3, min_width=400):
            panel = output_panel(name, shared.ctx.registry, compare=True)
    return TabSpec(
        mode=mode,
        fields={
            **{f"image{i}": s for i, s in enumerate(slots, start=1)},
            "prompt": prompt, "main": main, **adv.fields(),
        },
        controls=controls,
        panel=panel,
        advanced=adv,
        sources=slots,
        prompt_tools=tools,
    )

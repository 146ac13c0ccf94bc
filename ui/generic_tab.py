"""The tab of any mode without a tab module of its own, built from its declared inputs: a text
box per prompt or text, an upload per picture (three for several), a mask editor when it
takes a mask, a slider per number (in Advanced, with the common knobs)."""

from __future__ import annotations

import gradio as gr

from backend.modes import InputKind
from ui.layout import (
    MaskEditor,
    advanced_controls,
    input_slider,
    mask_editor,
    output_panel,
    run_controls,
    upload_image,
)
from ui.prompt_tools import PromptTools, prompt_tools
from ui.tabspec import Component, Shared, Spec, TabSpec, image_slots


def choice_radio(mode: Spec, name: str) -> gr.Radio:
    """The radio of one declared CHOICE input (its labels, its default first)."""
    inp = mode.input(name)
    assert inp is not None and inp.choices, f"{mode.name}.{name} is not a choice"
    return gr.Radio(list(inp.choices), value=inp.values[0], label=inp.label,
                    elem_id=f"{mode.name}_{name}")


def build(shared: Shared, mode: Spec) -> TabSpec:
    name = mode.name
    fields: dict[str, Component] = {}
    sources: list[Component] = []
    editors: set[int] = set()
    painted = mode.has(InputKind.MASK)
    painter: MaskEditor | None = None
    tools: PromptTools | None = None
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            for inp in mode.inputs:
                elem_id = f"{name}_{inp.name}"
                if inp.kind is InputKind.IMAGE and painted:
                    painter = mask_editor(elem_id, inp.label)
                    fields[inp.name] = painter.sent
                    editors.add(len(sources))
                    sources.append(painter.shown)
                elif inp.kind is InputKind.IMAGE:
                    fields[inp.name] = upload_image(elem_id, inp.label, 340)
                    sources.append(fields[inp.name])
                elif inp.kind is InputKind.IMAGES:
                    with gr.Row():
                        for slot in image_slots(inp):
                            fields[slot] = upload_image(f"{name}_{slot}", slot.capitalize(), 200)
                            sources.append(fields[slot])
                elif inp.kind in (InputKind.PROMPT, InputKind.TEXT):
                    box = fields[inp.name] = gr.Textbox(
                        label=inp.label, lines=3 if inp.kind is InputKind.PROMPT else 1,
                        placeholder=inp.placeholder, elem_id=elem_id,
                    )
                    if inp.kind is InputKind.PROMPT and tools is None:
                        tools = prompt_tools(shared.ctx.settings.library.data_dir, name, box)
            for inp in mode.inputs:
                if inp.kind is InputKind.CHOICE:
                    fields[inp.name] = choice_radio(mode, inp.name)
            for inp in mode.inputs:   # the mask is painted on the picture's editor
                if inp.kind is InputKind.MASK and painter is not None:
                    fields[inp.name] = painter.sent
            controls = run_controls(name, mode.title)
            with gr.Accordion("Advanced", open=False):
                for inp in mode.inputs:
                    if inp.kind is InputKind.NUMBER:
                        fields[inp.name] = input_slider(mode, inp.name)
                adv = advanced_controls(shared.ctx, mode)
        with gr.Column(scale=3, min_width=400):
            panel = output_panel(name, shared.ctx.registry, compare=mode.max_images > 0)
    return TabSpec(
        mode=mode,
        fields={**fields, **adv.fields()},
        controls=controls,
        panel=panel,
        advanced=adv,
        sources=sources,
        editor_sources=frozenset(editors),
        editor=painter,
        prompt_tools=tools,
    )

"""Outpaint: extend the canvas on any side; the new area is painted to match.

Per-side sliders (multiples of 16, the latent grid), aspect presets that compute the pads,
and a live preview of the padded canvas with a checkerboard where new pixels will go.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import gradio as gr
from PIL import Image

from backend.modes.outpaint import CanvasPlan, plan_canvas
from backend.operations.images import decode_image, read_header
from backend.requests import InvalidRequest
from ui.imaging import OUTPAINT_ASPECTS, Pads, padded_preview, pads_for_aspect
from ui.layout import advanced_controls, input_slider, output_panel, run_controls, upload_image
from ui.prompt_tools import prompt_tools
from ui.tabspec import Shared, Spec, TabSpec

SIDES = ("left", "top", "right", "bottom")
PREVIEW_SIDE = 512


def canvas_text(size: tuple[int, int] | None, plan: CanvasPlan | None) -> str:
    """The input's size and the result's, exactly as the job will make it (`plan_canvas`:
    the 16-pixel grid and the result-size cap included)."""
    if size is None or plan is None:
        return "Add a picture to see the new canvas."
    w, h = plan.size
    return f"{size[0]}×{size[1]} → **{w}×{h}**"


def preview_pads(plan: CanvasPlan, shown_width: int) -> Pads:
    """The plan's pads in the preview's pixels (the preview is a small copy of the input)."""
    geometry = plan.geometry
    scale = shown_width / geometry.image_full[0]
    return Pads(*(round(v * scale) for v in geometry.pads_full))


@lru_cache(maxsize=16)
def preview_source(path: str, max_pixels: int) -> tuple[Image.Image, tuple[int, int]]:
    """A small copy of the upload and its size, decoded safely once per file (every slider
    release redraws the preview)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidRequest("The upload is gone from the server; add the picture again.") from exc
    size = read_header(data, max_pixels=max_pixels).size
    # Decoded straight to about the preview's size: a 200 MP phone photo is never held whole.
    scale = min(1.0, PREVIEW_SIDE / max(size))
    fit = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
    small = decode_image(data, max_pixels=max_pixels, fit=fit)
    small.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    return small, size


def build(shared: Shared, mode: Spec) -> TabSpec:
    prefix = mode.name
    settings = shared.ctx.settings
    pad = settings.pad_knob
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            with gr.Row(equal_height=False):
                image = upload_image(f"{prefix}_image", "Picture", 250, min_width=160)
                preview = gr.Image(
                    label="New canvas",
                    type="pil",
                    format="png",
                    interactive=False,
                    height=250,
                    min_width=160,
                    buttons=["fullscreen"],
                    elem_id=f"{prefix}_canvas",
                )
            size_text = gr.Markdown(canvas_text(None, None), elem_id=f"{prefix}_size",
                                    elem_classes=["hint"])
            with gr.Row(elem_classes=["aspect-row"]):
                aspect_buttons = {
                    name: gr.Button(name, size="sm", min_width=60,
                                    elem_id=f"{prefix}_aspect_{name[3:].replace(':', 'x')}")
                    for name in OUTPAINT_ASPECTS
                }
            sliders = {}
            with gr.Row():
                for side in SIDES[:2]:
                    sliders[side] = input_slider(mode, side, knob=pad)
            with gr.Row():
                for side in SIDES[2:]:
                    sliders[side] = input_slider(mode, side, knob=pad)
            prompt = gr.Textbox(
                label="What the new area shows (optional)",
                lines=2,
                placeholder="continue the beach and the sky",
                elem_id=f"{prefix}_prompt",
            )
            tools = prompt_tools(shared.ctx.settings.library.data_dir, prefix, prompt)
            controls = run_controls(prefix, "Outpaint")
            with gr.Accordion("Advanced", open=False):
                feathering = input_slider(mode, "feathering")
                adv = advanced_controls(shared.ctx, mode)
        with gr.Column(scale=3, min_width=400):
            panel = output_panel(prefix, shared.ctx.registry)

    side_list = [sliders[s] for s in SIDES]
    max_pixels = settings.max_input_pixels

    def show(
        path: str | None, left: float, top: float, right: float, bottom: float
    ) -> tuple[Image.Image | None, str]:
        if path is None:
            return None, canvas_text(None, None)
        try:
            small, size = preview_source(path, max_pixels)
        except InvalidRequest as exc:
            return None, exc.message
        plan = plan_canvas(size, (int(left), int(top), int(right), int(bottom)), settings)
        return (padded_preview(small, preview_pads(plan, small.width), max_side=512),
                canvas_text(size, plan))

    quiet = {"show_progress": "hidden", "trigger_mode": "always_last", "api_visibility": "private"}
    image.change(show, [image, *side_list], [preview, size_text], **quiet)
    for slider in side_list:
        # `input` too: typing in a side's number box (and Enter) never fires `release`,
        # which Gradio sends on a drag's end and on leaving the box.
        slider.release(show, [image, *side_list], [preview, size_text], **quiet)
        slider.input(show, [image, *side_list], [preview, size_text], **quiet)

    for name, button in aspect_buttons.items():
        def to_aspect(path: str | None, _ratio: float = OUTPAINT_ASPECTS[name]) -> tuple[object, ...]:
            if path is None:
                gr.Warning("Add a picture first.")
                return (gr.skip(),) * 6
            try:
                _, size = preview_source(path, max_pixels)
            except InvalidRequest as exc:
                gr.Warning(exc.message)
                return (gr.skip(),) * 6
            pads = pads_for_aspect(size, _ratio, pad.high)
            preview_img, text = show(path, pads.left, pads.top, pads.right, pads.bottom)
            return pads.left, pads.top, pads.right, pads.bottom, preview_img, text

        button.click(to_aspect, image, [*side_list, preview, size_text], **quiet)

    return TabSpec(
        mode=mode,
        fields={"image": image, **sliders, "prompt": prompt, "feathering": feathering,
                **adv.fields()},
        controls=controls,
        panel=panel,
        advanced=adv,
        sources=[image],
        prompt_tools=tools,
    )

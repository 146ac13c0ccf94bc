"""Outpaint: extend the canvas on any side; the new area is painted to match.

Per-side sliders (multiples of 16, the latent grid), aspect presets that compute the pads,
and a live preview of the padded canvas with a checkerboard where new pixels will go.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from backend.operations import OutpaintRequest
from backend.operations.base import InvalidRequest
from backend.operations.images import decode_image
from ui.controls import advanced_controls, output_panel, run_controls, upload_image
from ui.imaging import OUTPAINT_ASPECTS, Pads, padded_preview, pads_for_aspect
from ui.widgets import Built, Shared, TabSpec, common_values, read_upload

MODE = "outpaint"
SIDES = ("left", "top", "right", "bottom")


def canvas_text(size: tuple[int, int] | None, pads: Pads) -> str:
    if size is None:
        return "Add a picture to see the new canvas."
    w, h = pads.canvas_size(size)
    return f"{size[0]}×{size[1]} → **{w}×{h}**"


@lru_cache(maxsize=16)
def preview_source(path: str, max_pixels: int) -> tuple[Image.Image, tuple[int, int]]:
    """A small copy of the upload and its size, decoded safely once per file (every slider
    release redraws the preview)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidRequest("The upload is gone from the server; add the picture again.") from exc
    image = decode_image(data, max_pixels=max_pixels)
    small = image.copy()
    small.thumbnail((512, 512))
    return small, image.size


def build(shared: Shared) -> TabSpec:
    sampling = shared.ctx.settings.sampling
    max_pad = int(getattr(shared.ctx.settings, "max_outpaint_pad", 1024))
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            with gr.Row(equal_height=False):
                image = upload_image(f"{MODE}_image", "Picture", 250, min_width=160)
                preview = gr.Image(
                    label="New canvas",
                    type="pil",
                    format="png",
                    interactive=False,
                    height=250,
                    min_width=160,
                    buttons=["fullscreen"],
                    elem_id=f"{MODE}_canvas",
                )
            size_text = gr.Markdown(canvas_text(None, Pads(0, 0, 0, 0)), elem_id=f"{MODE}_size",
                                    elem_classes=["hint"])
            with gr.Row(elem_classes=["aspect-row"]):
                aspect_buttons = {
                    name: gr.Button(name, size="sm", min_width=60,
                                    elem_id=f"{MODE}_aspect_{name[3:].replace(':', 'x')}")
                    for name in OUTPAINT_ASPECTS
                }
            sliders = {}
            with gr.Row():
                for side in SIDES[:2]:
                    sliders[side] = gr.Slider(0, max_pad, value=0, step=16, label=side.capitalize(),
                                              elem_id=f"{MODE}_{side}")
            with gr.Row():
                for side in SIDES[2:]:
                    sliders[side] = gr.Slider(0, max_pad, value=0, step=16, label=side.capitalize(),
                                              elem_id=f"{MODE}_{side}")
            prompt = gr.Textbox(
                label="What the new area shows (optional)",
                lines=2,
                placeholder="continue the beach and the sky",
                elem_id=f"{MODE}_prompt",
            )
            controls = run_controls(MODE, "Outpaint")
            with gr.Accordion("Advanced", open=False):
                feathering = gr.Slider(0, 256, value=24, step=4, label="Seam feathering (px)",
                                       elem_id=f"{MODE}_feathering")
                negative = gr.Textbox(label="Negative prompt", lines=2, elem_id=f"{MODE}_negative")
                adv = advanced_controls(
                    shared.ctx, MODE, steps=sampling.edit_steps, cfg=sampling.edit_cfg
                )
        with gr.Column(scale=3, min_width=400):
            panel = output_panel(MODE)

    side_list = [sliders[s] for s in SIDES]

    max_pixels = int(getattr(shared.ctx.settings, "max_input_pixels", 40_000_000))

    def show(path: str | None, left: float, top: float, right: float, bottom: float):
        pads = Pads(int(left), int(top), int(right), int(bottom))
        if path is None:
            return None, canvas_text(None, pads)
        try:
            small, size = preview_source(path, max_pixels)
        except InvalidRequest as exc:
            return None, exc.message
        scale = small.width / size[0]
        shown = Pads(*(round(v * scale) for v in (pads.left, pads.top, pads.right, pads.bottom)))
        return padded_preview(small, shown, max_side=512), canvas_text(size, pads)

    quiet = {"show_progress": "hidden", "trigger_mode": "always_last", "api_visibility": "private"}
    image.change(show, [image, *side_list], [preview, size_text], **quiet)
    for slider in side_list:
        slider.release(show, [image, *side_list], [preview, size_text], **quiet)

    for name, button in aspect_buttons.items():
        def to_aspect(path: str | None, _ratio: float = OUTPAINT_ASPECTS[name]):
            if path is None:
                gr.Warning("Add a picture first.")
                return (gr.skip(),) * 6
            try:
                _, size = preview_source(path, max_pixels)
            except InvalidRequest as exc:
                gr.Warning(exc.message)
                return (gr.skip(),) * 6
            pads = pads_for_aspect(size, _ratio, max_pad)
            preview_img, text = show(path, pads.left, pads.top, pads.right, pads.bottom)
            return pads.left, pads.top, pads.right, pads.bottom, preview_img, text

        button.click(to_aspect, image, [*side_list, preview, size_text], **quiet)

    def make(values: list[Any]) -> Built:
        common, (path, left, top, right, bottom, text, feather, neg) = common_values(adv, values)
        img = read_upload(path)
        request = OutpaintRequest(
            image=img, left=int(left), top=int(top), right=int(right), bottom=int(bottom),
            prompt=text or "", feathering=int(feather), negative_prompt=neg or "", **common,
        )
        params = {"prompt": text, "left": int(left), "top": int(top), "right": int(right),
                  "bottom": int(bottom), "feathering": int(feather), "negative_prompt": neg,
                  **common}
        return Built(request, params, (img,) if img is not None else ())

    return TabSpec(
        mode=MODE,
        inputs=[*adv.inputs(), image, *side_list, prompt, feathering, negative],
        build=make,
        controls=controls,
        panel=panel,
        advanced=adv,
        fields={"prompt": prompt, **sliders, "feathering": feathering,
                "negative_prompt": negative, **adv.fields()},
        sources=[image],
    )

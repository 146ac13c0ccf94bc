"""Building blocks every tab lays out the same way: the Advanced knobs, the run row, and the
output panel (progress host, live preview, result, info, send-to buttons).

Only layout lives here; `ui/widgets.py` wires the behaviour.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

log = logging.getLogger(__name__)

# Tab labels, in page order. The ids are the mode names used everywhere else.
TAB_LABELS: dict[str, str] = {
    "generate": "Generate",
    "edit": "Edit",
    "multiref": "Multi-ref",
    "remove_background": "Remove background",
    "region_edit": "Region edit",
    "inpaint": "Inpaint",
    "outpaint": "Outpaint",
}
# What a result can be sent on to (Generate takes no image).
SEND_TARGETS: tuple[str, ...] = (
    "edit",
    "inpaint",
    "outpaint",
    "region_edit",
    "remove_background",
    "multiref",
)
SEND_LABELS: dict[str, str] = {
    "edit": "Edit",
    "inpaint": "Inpaint",
    "outpaint": "Outpaint",
    "region_edit": "Region edit",
    "remove_background": "Remove bg",
    "multiref": "Multi-ref",
}
MAX_SEED = 2**53 - 1


def upload_image(elem_id: str, label: str, height: int, **kwargs: Any) -> gr.Image:
    """An image input whose handler gets the uploaded file's path, unopened.

    Stock gr.Image decodes in Gradio's preprocess, before the studio sees the file: an
    unreadable upload ends in Gradio's generic error (with a server path), and a large PNG
    is fully decoded before the pixel limit is checked. Here the handler reads the bytes and
    the backend's decode_image checks the header first and words the refusal.
    The override is per instance: a gr.Image subclass would make Gradio write a .pyi stub
    next to this module on import.
    """
    image = gr.Image(
        label=label,
        type="filepath",
        image_mode=None,
        sources=["upload", "clipboard"],
        height=height,
        elem_id=elem_id,
        **kwargs,
    )
    stock = image.preprocess

    def path_of_upload(payload: Any) -> str | None:
        if payload is None:
            return None
        if getattr(payload, "path", None):
            return str(payload.path)
        return stock(payload)  # a data: URL (rare): let Gradio decode it

    image.preprocess = path_of_upload  # type: ignore[method-assign]
    return image


@dataclass
class Advanced:
    """The common sampling knobs. `steps`/`cfg` are None for modes without a sampler."""

    seed: gr.Number
    randomize: gr.Checkbox
    variant: gr.Dropdown
    steps: gr.Slider | None = None
    cfg: gr.Slider | None = None

    def inputs(self) -> list[gr.components.Component]:
        return [c for c in (self.seed, self.randomize, self.steps, self.cfg, self.variant) if c]

    def fields(self) -> dict[str, gr.components.Component]:
        out: dict[str, gr.components.Component] = {"seed": self.seed, "variant": self.variant}
        if self.steps is not None:
            out["steps"] = self.steps
        if self.cfg is not None:
            out["cfg"] = self.cfg
        return out


def variants_of(ctx: Any, mode: str) -> list[str]:
    try:
        names = list(ctx.library.variants(mode))
    except Exception as exc:  # a broken workflows dir must not stop the page from loading
        log.warning("variants of %s unavailable: %s", mode, exc)
        names = []
    return names or ["default"]


def advanced_controls(
    ctx: Any, mode: str, *, steps: int | None, cfg: float | None, sampler: bool = True
) -> Advanced:
    """Call inside the tab's `gr.Accordion("Advanced")`; the tab adds its own knobs after."""
    with gr.Row(equal_height=True):
        seed = gr.Number(
            label="Seed",
            value=0,
            precision=0,
            minimum=0,
            maximum=MAX_SEED,
            scale=3,
            elem_id=f"{mode}_seed",
            visible=sampler,
        )
        randomize = gr.Checkbox(
            label="Random seed",
            value=True,
            scale=1,
            min_width=120,
            elem_id=f"{mode}_randomize",
            visible=sampler,
        )
    step_slider = cfg_slider = None
    if sampler:
        with gr.Row():
            step_slider = gr.Slider(
                1, 80, value=steps or 20, step=1, label="Steps", elem_id=f"{mode}_steps"
            )
            cfg_slider = gr.Slider(
                0.0, 10.0, value=cfg if cfg is not None else 2.5, step=0.1, label="CFG",
                elem_id=f"{mode}_cfg",
            )
    names = variants_of(ctx, mode)
    variant = gr.Dropdown(
        names,
        value=names[0],
        label="Template variant",
        info="workflows/<mode>.<variant>.json",
        elem_id=f"{mode}_variant",
        interactive=len(names) > 1,
    )
    return Advanced(seed, randomize, variant, step_slider, cfg_slider)


@dataclass
class RunControls:
    run: gr.Button
    stop: gr.Button
    message: gr.Markdown


def mask_edge_sliders(mode: str, grow: int, feather: int) -> tuple[gr.Slider, gr.Slider]:
    """Grow and feather (input pixels) for the masked modes, side by side."""
    with gr.Row():
        grow_slider = gr.Slider(
            0, 128, value=grow, step=1, label="Grow mask (px)", elem_id=f"{mode}_grow"
        )
        feather_slider = gr.Slider(
            0, 128, value=feather, step=1, label="Feather (px)", elem_id=f"{mode}_feather"
        )
    return grow_slider, feather_slider


def run_controls(mode: str, label: str) -> RunControls:
    with gr.Row(elem_classes=["run-row"]):
        run = gr.Button(label, variant="primary", scale=4, elem_id=f"{mode}_run")
        stop = gr.Button("Stop", variant="stop", scale=1, min_width=80, elem_id=f"{mode}_stop")
    message = gr.Markdown("", elem_id=f"{mode}_msg", elem_classes=["run-msg"])
    return RunControls(run, stop, message)


@dataclass
class OutputPanel:
    mode: str
    status: gr.HTML
    preview: gr.Image
    result: gr.Image
    info: gr.Markdown
    send: dict[str, gr.Button] = field(default_factory=dict)
    mask: gr.Image | None = None
    compare: gr.ImageSlider | None = None


def output_panel(
    mode: str, *, mask_label: str | None = None, compare: bool = False
) -> OutputPanel:
    """Progress host above the image so the overlay never covers the live preview."""
    status = gr.HTML(
        "<div class='status-idle'>Ready.</div>",
        elem_id=f"{mode}_status",
        elem_classes=["run-status"],
        padding=False,
    )
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=320):
            preview = gr.Image(
                label="Live preview",
                type="pil",
                format="png",
                interactive=False,
                visible=False,
                height=520,
                buttons=["fullscreen"],
                elem_id=f"{mode}_preview",
            )
            result = gr.Image(
                label="Result",
                type="filepath",
                format="png",
                image_mode=None,
                interactive=False,
                height=520,
                buttons=["download", "fullscreen"],
                elem_id=f"{mode}_result",
                placeholder="The result appears here.",
            )
        mask = None
        if mask_label:
            with gr.Column(scale=1, min_width=200):
                mask = gr.Image(
                    label=mask_label,
                    type="pil",
                    format="png",
                    image_mode="L",
                    interactive=False,
                    height=260,
                    buttons=["download", "fullscreen"],
                    elem_id=f"{mode}_mask_out",
                )
    info = gr.Markdown("", elem_id=f"{mode}_info", elem_classes=["run-info"])
    slider = None
    if compare:
        with gr.Accordion("Compare before / after", open=False):
            slider = gr.ImageSlider(
                label="Before | After",
                type="pil",
                format="png",
                interactive=False,
                max_height=520,
                elem_id=f"{mode}_compare",
            )
    send: dict[str, gr.Button] = {}
    with gr.Row(elem_classes=["send-row"]):
        gr.HTML("<span class='send-label'>Send result to</span>", padding=False)
        for target in SEND_TARGETS:
            send[target] = gr.Button(
                SEND_LABELS[target],
                size="sm",
                variant="secondary",
                min_width=60,
                elem_id=f"{mode}_send_{target}",
            )
    return OutputPanel(mode, status, preview, result, info, send, mask, slider)

"""Layout: the components every tab lays out the same way — image uploads, sliders made from a
mode's declared inputs, the Advanced knobs, the run row, and the output panel (progress host,
live preview, result, info, send-to buttons).

Only layout lives here; `ui/runner.py` wires the behaviour, `ui/tabspec.py` binds by name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from backend import limits
from backend.context import StudioContext
from backend.limits import Knob
from backend.modes import ModeInput, ModeRegistry, ModeSpec
from backend.requests import RequestBase
from ui.imaging import MASK_ALPHA, MASK_RGB
from ui.live import IDLE_STATUS
from ui.upload import StudioImage

log = logging.getLogger(__name__)
Spec = ModeSpec[RequestBase]


def upload_image(elem_id: str, label: str, height: int, **kwargs: Any) -> StudioImage:
    """An image input whose handler gets the uploaded file's path, unopened (ui/upload.py)."""
    return StudioImage(
        label=label,
        type="filepath",
        image_mode=None,
        sources=["upload", "clipboard"],
        height=height,
        elem_id=elem_id,
        **kwargs,
    )


BRUSH_COLOUR = (f"rgb({MASK_RGB[0]}, {MASK_RGB[1]}, {MASK_RGB[2]})", round(MASK_ALPHA / 255, 2))


# Copies a value between two components in the browser (no server round trip).
COPY_JS = "(value) => value"


@dataclass
class MaskEditor:
    """A picture with one fixed mask layer to paint on, and its two hidden twins.

    Gradio's page asks every component that was ever an input or output of a server event for
    its value each time any event changes state (every progress update of every run), and an
    ImageEditor answers by uploading its picture, layer and composite again: one Generate
    with a painted Inpaint editor made hundreds of uploads and Stop took 13-20 s. So the editor
    itself is never an input or output of a server event: a click that needs its value first
    copies it into `sent` in the browser (`relay`), and the server reads `sent`; a handler that
    changes the picture writes `shown`, which the browser copies into the editor. The twins are
    invisible (never mounted), so the page never asks them for anything.
    """

    editor: gr.ImageEditor
    sent: gr.ImageEditor
    shown: gr.ImageEditor

    def relay(self, trigger: Any) -> gr.events.Dependency:
        """`trigger` (a component's event listener, e.g. `button.click`) copies the editor's
        value into `sent`; chain the server handler with `.then(fn, inputs=[sent…])`."""
        return trigger(None, self.editor, self.sent, js=COPY_JS, queue=False,
                       api_visibility="private", trigger_mode="multiple")


def _editor(**kwargs: Any) -> gr.ImageEditor:
    return gr.ImageEditor(
        type="pil",
        image_mode="RGBA",
        format="png",
        sources=["upload", "clipboard"],
        transforms=(),
        layers=gr.LayerOptions(allow_additional_layers=False, layers=["mask"]),
        brush=gr.Brush(
            default_size="auto", colors=[BRUSH_COLOUR], default_color=BRUSH_COLOUR,
            color_mode="fixed",
        ),
        eraser=gr.Eraser(default_size="auto"),
        fixed_canvas=False,
        **kwargs,
    )


def mask_editor(elem_id: str, label: str, height: int = 440) -> MaskEditor:
    """The canvas takes the image's own size (fixed_canvas=False) and cannot be cropped or
    resized, so the mask lines up pixel for pixel with the picture the request sends."""
    editor = _editor(label=label, height=height, elem_id=elem_id,
                     elem_classes=["mask-editor"])
    twins = MaskEditor(editor, _editor(visible=False), _editor(visible=False))
    twins.shown.change(None, twins.shown, editor, js=COPY_JS, queue=False,
                       api_visibility="private")
    return twins


@dataclass
class Advanced:
    """The common knobs. Sampler knobs (`negative`, `steps`, `cfg`) are None for a mode whose
    model family has no sampler (seed and randomize are then hidden)."""

    seed: gr.Number
    randomize: gr.Checkbox
    variant: gr.Dropdown
    negative: gr.Textbox | None = None
    steps: gr.Slider | None = None
    cfg: gr.Slider | None = None
    batch: gr.Radio | None = None       # images per run (modes with a sampler)
    reuse: gr.Button | None = None      # "reuse this seed" / "random": explicit, beside the seed
    random: gr.Button | None = None

    def fields(self) -> dict[str, gr.components.Component]:
        """The knobs by the name the run reads them by (ui/tabspec.py COMMON_FIELDS)."""
        out: dict[str, gr.components.Component] = {
            "seed": self.seed, "randomize": self.randomize, "variant": self.variant,
        }
        for name, component in (
            ("negative_prompt", self.negative), ("steps", self.steps), ("cfg", self.cfg),
        ):
            if component is not None:
                out[name] = component
        return out


def variants_of(ctx: StudioContext, mode: str) -> list[str]:
    try:
        names = list(ctx.templates.variants(mode))
    except OSError as exc:  # a broken workflows dir must not stop the page from loading
        log.warning("variants of %s unavailable: %s", mode, exc)
        names = []
    return names or ["default"]


def knob_slider(
    knob: Knob, *, value: float, label: str, elem_id: str, **kwargs: Any
) -> gr.Slider:
    return gr.Slider(knob.low, knob.high, value=value, step=knob.step, label=label,
                     elem_id=elem_id, **kwargs)


def input_slider(
    spec: Spec, name: str, *, knob: Knob | None = None, value: float | None = None,
    **kwargs: Any,
) -> gr.Slider:
    """The slider of one declared NUMBER input: its knob's limits (or `knob`, where a setting
    moves them), label and starting value (or `value`)."""
    inp = _declared(spec, name)
    knob = knob or inp.knob
    assert knob is not None, f"{spec.name}.{name} is not a number"
    if value is None:
        value = inp.default if inp.default is not None else knob.low
    return knob_slider(knob, value=value, label=inp.label, elem_id=f"{spec.name}_{name}",
                       **kwargs)


def _declared(spec: Spec, name: str) -> ModeInput:
    inp = spec.input(name)
    if inp is None:
        raise KeyError(f"mode {spec.name!r} declares no input {name!r}")
    return inp


def advanced_controls(ctx: StudioContext, spec: Spec) -> Advanced:
    """Call inside the tab's `gr.Accordion("Advanced")`, after the tab's own knobs."""
    mode = spec.name
    defaults = spec.family.sampler(ctx.settings) if spec.family.sampler is not None else None
    negative = batch = reuse = random = None
    if defaults is not None:
        batch = gr.Radio(
            list(range(limits.BATCH.low, limits.BATCH.high + 1)), value=limits.BATCH.low,
            label="Images per run", info="Consecutive seeds; pick one from the grid",
            elem_id=f"{mode}_batch", elem_classes=["batch-radio"],
        )
        negative = gr.Textbox(label="Negative prompt", lines=2, elem_id=f"{mode}_negative")
    with gr.Row(equal_height=True):
        seed = gr.Number(
            label="Seed",
            value=0,
            precision=0,
            minimum=limits.SEED.low,
            maximum=limits.SEED.high,
            scale=3,
            elem_id=f"{mode}_seed",
            visible=defaults is not None,
        )
        randomize = gr.Checkbox(
            label="Random seed",
            value=True,
            scale=1,
            min_width=150,
            elem_id=f"{mode}_randomize",
            elem_classes=["seed-random"],
            visible=defaults is not None,
        )
    if defaults is not None:
        with gr.Row(elem_classes=["seed-actions"]):
            reuse = gr.Button("Reuse this seed", size="sm", elem_id=f"{mode}_reuse_seed")
            random = gr.Button("Random seed each run", size="sm",
                               elem_id=f"{mode}_random_seed")
    step_slider = cfg_slider = None
    if defaults is not None:
        with gr.Row():
            step_slider = knob_slider(
                limits.STEPS, value=defaults.steps, label="Steps", elem_id=f"{mode}_steps"
            )
            cfg_slider = knob_slider(
                limits.CFG, value=defaults.cfg, label="CFG", elem_id=f"{mode}_cfg"
            )
    names = variants_of(ctx, mode)
    variant = gr.Dropdown(
        names,
        value=names[0],
        label="Template variant",
        info="workflows/<mode>.<variant>.json (re-read when you open the tab)",
        elem_id=f"{mode}_variant",
        interactive=len(names) > 1,
    )
    quiet: dict[str, Any] = {"queue": False, "show_progress": "hidden",
                             "api_visibility": "private"}
    if reuse is not None and random is not None:
        reuse.click(lambda: False, None, randomize, **quiet)
        random.click(lambda: True, None, randomize, **quiet)
    return Advanced(seed, randomize, variant, negative, step_slider, cfg_slider, batch, reuse,
                    random)


@dataclass
class RunControls:
    run: gr.Button
    stop: gr.Button
    message: gr.Markdown


def mask_edge_sliders(spec: Spec) -> tuple[gr.Slider, gr.Slider]:
    """Grow and feather (input pixels) for the masked modes, side by side."""
    with gr.Row():
        return input_slider(spec, "grow"), input_slider(spec, "feather")


def run_controls(mode: str, label: str) -> RunControls:
    with gr.Row(elem_classes=["run-row"]):
        run = gr.Button(label, variant="primary", scale=4, elem_id=f"{mode}_run")
        stop = gr.Button("Stop", variant="stop", scale=1, min_width=80, elem_id=f"{mode}_stop")
    message = gr.Markdown("", elem_id=f"{mode}_msg", elem_classes=["run-msg"])
    return RunControls(run, stop, message)


@dataclass
class OutputPanel:
    mode: str
    status: gr.HTML                  # progress line and bar (ui/live.py), streamed by the follower
    preview: gr.HTML                 # the live preview, inline (never written to disk)
    result: gr.Image                 # the picked result: the library's PNG as it was saved
    info: gr.Markdown
    grid: gr.Gallery                 # a batch's results, to pick from
    landed: gr.Textbox               # hidden: changes when a job of the tab ends
    send: dict[str, gr.Button] = field(default_factory=dict)
    mask: gr.Image | None = None
    compare: gr.ImageSlider | None = None


def send_targets(registry: ModeRegistry) -> list[Spec]:
    """The modes a result can be sent on to, in their buttons' order."""
    targets = [s for s in registry if s.send_to is not None]
    return sorted(targets, key=lambda s: s.send_to.order if s.send_to else 0)


def output_panel(
    mode: str, registry: ModeRegistry, *, mask_label: str | None = None, compare: bool = False
) -> OutputPanel:
    """The progress line above the picture; the live preview covers the result while a job
    runs (CSS: `.out-stack`)."""
    status = gr.HTML(
        IDLE_STATUS,
        elem_id=f"{mode}_status",
        elem_classes=["run-status"],
        padding=False,
    )
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=320, elem_classes=["out-stack"]):
            preview = gr.HTML("", elem_id=f"{mode}_preview", elem_classes=["live-preview"],
                              padding=False)
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
                    type="filepath",
                    format="png",
                    image_mode="L",
                    interactive=False,
                    height=260,
                    buttons=["download", "fullscreen"],
                    elem_id=f"{mode}_mask_out",
                )
    grid = gr.Gallery(
        label="This batch — click one to pick it (send-to and compare use the picked one)",
        columns=4,
        height=180,
        allow_preview=False,
        object_fit="cover",
        format="png",
        interactive=False,
        visible=False,
        elem_id=f"{mode}_grid",
    )
    info = gr.Markdown("", elem_id=f"{mode}_info", elem_classes=["run-info"])
    landed = gr.Textbox("", visible="hidden", elem_id=f"{mode}_landed")
    slider = None
    if compare:
        with gr.Accordion("Compare before / after", open=False):
            slider = gr.ImageSlider(
                label="Before | After",
                type="filepath",
                format="png",
                interactive=False,
                max_height=520,
                elem_id=f"{mode}_compare",
            )
    send: dict[str, gr.Button] = {}
    with gr.Row(elem_classes=["send-row"]):
        gr.HTML("<span class='send-label'>Send result to</span>", padding=False)
        for target in send_targets(registry):
            assert target.send_to is not None
            send[target.name] = gr.Button(
                target.send_to.label,
                size="sm",
                variant="secondary",
                min_width=60,
                elem_id=f"{mode}_send_{target.name}",
            )
    return OutputPanel(mode, status, preview, result, info, grid, landed, send, mask, slider)

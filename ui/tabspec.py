"""What a tab hands the page (`TabSpec`), and how its controls become a request: BY NAME.

Each tab keeps one field table, name → component. The run handler receives the controls as a
dict keyed by component (Gradio's set-style inputs), turns it into values by name, and builds
the request from the mode's declared inputs (`ModeSpec.inputs`) plus the common knobs: the
control named "grow" fills the request's `grow`, whatever order the tab lays things out in.
Restore (history, dropped PNGs) writes into the same table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
from PIL import Image

from backend import limits
from backend.context import StudioContext
from backend.limits import IntKnob
from backend.modes import InputKind, ModeInput, ModeSpec
from backend.requests import ImageInput, InvalidRequest, RequestBase
from ui.imaging import editor_background, editor_mask, mask_coverage
from ui.layout import Advanced, MaskEditor, OutputPanel, RunControls
from ui.pages import Pages
from ui.prompt_tools import PromptTools, styled

if TYPE_CHECKING:
    from ui.mask_moves import MaskMove

Spec = ModeSpec[RequestBase]
Component = gr.components.Component
# Control values by field name, as the browser sent them (Gradio's types: raw input).
Values = Mapping[str, Any]
# The knobs every tab's Advanced section may carry (ui/layout.py Advanced.fields).
COMMON_FIELDS = ("seed", "randomize", "variant", "negative_prompt", "steps", "cfg")


def image_slots(inp: ModeInput) -> list[str]:
    """The field names of an IMAGES input's upload slots: image1 … imageN (the roles)."""
    return [f"image{i}" for i in range(1, limits.REFERENCES.high + 1)]


@dataclass(frozen=True)
class Built:
    """What a tab's controls turned into: the request, and what to remember about it."""

    request: RequestBase
    params: dict[str, object]
    sources: tuple[ImageInput, ...] = ()      # the input pictures (compare, history restore)
    updates: dict[Component, object] = field(default_factory=dict)  # shown as the run starts


@dataclass
class TabSpec:
    """One tab: its mode, its field table (the run's inputs by name), its panels.
    `sources` are the image slots in order, as a restore or send-to fills them (send-to fills
    the first); `editor_sources` the indexes among them that are mask editors (their slot is
    the editor's `shown` twin, and the field table holds its `sent` twin: see
    ui/layout.MaskEditor); `on_run` adds updates shown as a run starts."""

    mode: Spec
    fields: dict[str, Component]
    controls: RunControls
    panel: OutputPanel
    advanced: Advanced | None
    sources: list[Component] = field(default_factory=list)
    editor_sources: frozenset[int] = frozenset()
    extra_outputs: list[Component] = field(default_factory=list)
    on_run: Callable[[Values], dict[Component, object]] | None = None
    editor: MaskEditor | None = None
    mask_move: MaskMove | None = None       # sends the result's mask to Inpaint
    prompt_tools: PromptTools | None = None  # style menu and recent prompts (ui/prompt_tools)

    def __post_init__(self) -> None:
        if self.prompt_tools is not None:
            self.fields.setdefault("style", self.prompt_tools.style)

    @property
    def name(self) -> str:
        return self.mode.name

    def build(self, values: Values) -> Built:
        """The request from the controls' values by name (InvalidRequest: nothing runs)."""
        built = build_by_name(self.mode, values)
        if self.prompt_tools is not None:
            built = Built(styled(self.prompt_tools, built.request, values.get("style")),
                          built.params, built.sources)
        if self.on_run is None:
            return built
        return Built(built.request, built.params, built.sources, self.on_run(values))

    @property
    def seeded(self) -> bool:
        """The mode samples (it has a seed, steps and a batch count)."""
        return self.advanced is not None and self.advanced.steps is not None

    def settings_fields(self) -> dict[str, Component]:
        """The controls a restore may set: every field but the pictures and "randomize"."""
        pictures = {id(c) for c in self.sources}
        if self.editor is not None:
            pictures.add(id(self.editor.sent))
        return {
            name: comp for name, comp in self.fields.items()
            if id(comp) not in pictures and name != "randomize"
        }


@dataclass
class Shared:
    """Per-process objects every tab needs; `browser` is the page's browser id
    (gr.BrowserState, ui/identity.py), made by build_ui before the tabs."""

    ctx: StudioContext
    pages: Pages
    browser: gr.BrowserState | None = None


# -- by name: values → request ------------------------------------------------------------------
def build_by_name(mode: Spec, values: Values) -> Built:
    inputs, sources = input_values(mode, values)
    common = common_values(values)
    request = mode.request_from({**inputs, **common})
    pictures = {i.name for i in mode.inputs if i.kind in PICTURE_KINDS}
    params: dict[str, object] = {
        **{k: v for k, v in inputs.items() if k not in pictures}, **common
    }
    if MAIN in params:      # as its radio offers it (a restore fills the slots in order)
        params[MAIN] = str(params[MAIN])
    return Built(request, params, sources)


PICTURE_KINDS = frozenset({InputKind.IMAGE, InputKind.IMAGES, InputKind.MASK})


def input_values(mode: Spec, values: Values) -> tuple[dict[str, object], tuple[ImageInput, ...]]:
    """The declared inputs' values (converted), and the input pictures among them."""
    out: dict[str, object] = {}
    sources: list[ImageInput] = []
    painted = mode.has(InputKind.MASK)   # the picture is an editor with a mask layer
    for inp in mode.inputs:
        raw = values.get(inp.name)
        if inp.kind is InputKind.PROMPT:
            out[inp.name] = str(raw or "")
        elif inp.kind is InputKind.TEXT:
            out[inp.name] = str(raw or "").strip()
        elif inp.kind is InputKind.NUMBER:
            out[inp.name] = _number(inp, raw)
        elif inp.kind is InputKind.CHOICE and inp.name != MAIN:
            out[inp.name] = inp.values[0] if raw in (None, "") else str(raw)
        elif inp.kind is InputKind.IMAGE:
            picture = editor_picture(raw) if painted else read_upload(raw)
            out[inp.name] = picture
            sources += [picture] if picture is not None else []
        elif inp.kind is InputKind.IMAGES:
            # Order matters (picture 1, 2, 3): an empty middle slot closes the gap.
            slots = [read_upload(values.get(name)) for name in image_slots(inp)]
            pictures = tuple(p for p in slots if p is not None)
            out[inp.name] = pictures
            sources += pictures
            if mode.input(MAIN) is not None:
                out[MAIN] = main_reference(slots, values.get(MAIN))
        elif inp.kind is InputKind.MASK:
            out[inp.name] = painted_mask(raw)
    return out, tuple(sources)


# A mode with several pictures may declare which slot is the main one (Multi-ref: the one
# that sets the canvas); the request counts among the pictures sent, gaps closed.
MAIN = "main"


def main_reference(slots: list[ImageInput | None], chosen: Any) -> int:
    """The chosen slot's place among the filled ones (1-based); an empty main slot is
    refused, never silently replaced by the next picture."""
    slot = int(chosen) if chosen not in (None, "") else 1
    if not 1 <= slot <= len(slots) or slots[slot - 1] is None:
        filled = [i for i, p in enumerate(slots, start=1) if p is not None]
        hint = (f" add one there, or choose Reference {filled[0]} as the main picture"
                if filled else " add one there")
        raise InvalidRequest(f"Reference {slot}, the main picture, is empty:{hint}.",
                             f"image{slot}")
    return sum(1 for p in slots[:slot] if p is not None)


def common_values(values: Values) -> dict[str, object]:
    """The Advanced knobs a tab has: a random seed and the default variant become None."""
    out: dict[str, object] = {}
    if "seed" in values:
        seed = values["seed"]
        out["seed"] = None if values.get("randomize") or seed is None else int(seed)
    if "variant" in values:
        variant = values["variant"]
        out["variant"] = None if variant in (None, "", "default") else str(variant)
    if "steps" in values:
        out["steps"] = int(values["steps"])
    if "cfg" in values:
        out["cfg"] = round(float(values["cfg"]), 2)
    if "negative_prompt" in values:
        out["negative_prompt"] = str(values["negative_prompt"] or "")
    return out


def _number(inp: ModeInput, raw: Any) -> int | float:
    if raw is None:
        raw = inp.default if inp.default is not None else 0
    return int(raw) if isinstance(inp.knob, IntKnob) else float(raw)


def read_upload(value: Any) -> ImageInput | None:
    """An upload's value (a file path) as bytes for the request; None when empty."""
    if value is None or isinstance(value, Image.Image | bytes):
        return value
    try:
        return Path(value).read_bytes()
    except OSError as exc:
        raise InvalidRequest("The upload is gone from the server; add the picture again.") from exc


def editor_picture(value: Any) -> Image.Image:
    background = editor_background(value)
    if background is None:
        raise InvalidRequest("Add a picture first, then paint where it should change.", "image")
    return background


def painted_mask(value: Any) -> Image.Image:
    mask = editor_mask(value)
    if mask is None or mask_coverage(mask) == 0:
        raise InvalidRequest("Paint over the part of the picture that should change.", "mask")
    return mask


def fields_of(tab_fields: Mapping[str, Component], values: Mapping[Component, Any]) -> dict[str, Any]:
    """Gradio's {component: value} → {field name: value} (one component may serve two
    names: an inpaint editor is both the picture and the mask)."""
    return {name: values[comp] for name, comp in tab_fields.items() if comp in values}


# What ui/tabs/<mode>.py (and ui/generic_tab.py) provide: build(shared, mode) -> TabSpec.
TabBuilder = Callable[[Shared, Spec], TabSpec]

"""Every tab binds its controls BY NAME: each control, found by its element id (what a person
sees and the browser tests click), is set to a distinctive value; the tab's run builds the
request the way the run handler does (Gradio's {component: value} → the field table); the value
must reach the request field of the same name, and from there the workflow input it names.

A tab whose field table pairs a name with the wrong control (grow ↔ feather, say) fails here,
and so does an operation that binds a field to the wrong role.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import io  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gradio as gr  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from backend.context import StudioContext, build_context  # noqa: E402
from backend.limits import IntKnob  # noqa: E402
from backend.modes import REGISTRY, InputKind  # noqa: E402
from backend.settings import Settings  # noqa: E402
from backend.workflows import bind  # noqa: E402
from ui import generic_tab  # noqa: E402
from ui.app import tab_builder  # noqa: E402
from ui.live import IDLE_STATUS  # noqa: E402
from ui.pages import Pages  # noqa: E402
from ui.tabspec import Shared, TabSpec, fields_of  # noqa: E402

SIDE = 512  # inputs at the working size (scale 1), so pixel knobs land in the graph unscaled
SETTINGS = Settings(max_sampling_pixels=4 * SIDE * SIDE)  # 512² is the smallest not upscaled
# Where a field's value lands in the bound workflow: (role, role field). Fields not listed
# (grow/feather of inpaint, which shape the uploaded mask) are checked on the request only.
LANDS_IN: dict[str, tuple[str, str]] = {
    "prompt": ("prompt", "text"),
    "negative_prompt": ("negative", "text"),
    "seed": ("sampler", "seed"),
    "steps": ("sampler", "steps"),
    "cfg": ("sampler", "cfg"),
    "width": ("latent", "width"),
    "height": ("latent", "height"),
    "region": ("region", "text"),
    "left": ("pad", "left"),
    "top": ("pad", "top"),
    "right": ("pad", "right"),
    "bottom": ("pad", "bottom"),
    "feathering": ("pad", "feathering"),
}
GROW_LANDS_IN = {"region_edit": ("grow", "pixels")}
# Element ids that are not "<mode>_<field>".
ELEMENT = {"negative_prompt": "negative"}


@pytest.fixture(scope="module")
def tabs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StudioContext, list[TabSpec]]]:
    ctx = build_context(SETTINGS)
    shared = Shared(ctx, Pages(IDLE_STATUS))
    built = []
    with gr.Blocks():
        for mode in REGISTRY:
            with gr.Tab(mode.title):
                built.append(tab_builder(mode)(shared, mode))
    yield ctx, built


@pytest.fixture(scope="module")
def generic_tabs(
    tabs: tuple[StudioContext, list[TabSpec]], tmp_path_factory: pytest.TempPathFactory
) -> list[TabSpec]:
    """Every built-in mode in the generic tab, as a new mode without a tab module gets it."""
    ctx, _ = tabs
    shared = Shared(ctx, Pages(IDLE_STATUS))
    with gr.Blocks():
        return [generic_tab.build(shared, mode) for mode in REGISTRY]


def picture(index: int) -> Image.Image:
    return Image.new("RGB", (SIDE, SIDE), (40 * index % 256, 90, 200 - 30 * index))


def upload(folder: Path, index: int) -> str:
    path = folder / f"picture{index}.png"
    picture(index).save(path)
    return str(path)


def distinctive(tab: TabSpec, name: str, index: int, folder: Path) -> Any:
    """A value no other control of the tab gets, valid for its control."""
    spec = tab.mode
    declared = spec.input(name)
    if name == "seed":
        return 123_457 + index
    if name == "randomize":
        return False
    if name == "steps":
        return 37
    if name == "cfg":
        return 4.3
    if name == "variant":
        return "default"
    if name == "style":
        return None    # no style: the prompt reaches the workflow as typed
    if name.startswith("image") and (declared is None or declared.kind is InputKind.IMAGE):
        if spec.has(InputKind.MASK):   # an editor: the picture, with a painted layer
            layer = Image.new("RGBA", (SIDE, SIDE), (0, 0, 0, 0))
            layer.paste((255, 0, 0, 150), (100, 100, 200, 180))
            return {"background": picture(index), "layers": [layer], "composite": None}
        return upload(folder, index)
    if declared is not None and declared.kind is InputKind.MASK:
        return None   # the same editor as the picture
    if declared is not None and declared.kind is InputKind.CHOICE:
        # Not the default; Multi-ref's main stays 1 so each slot's picture keeps its role.
        return declared.values[0] if name == "main" else declared.values[-1]
    if declared is not None and declared.kind is InputKind.NUMBER:
        knob = declared.knob
        assert isinstance(knob, IntKnob)
        step = max(knob.step, 1)
        return knob.low + step * (index + 2) if knob.low + step * (index + 2) <= knob.high \
            else knob.high - step * index
    return f"{name}-{spec.name}-{index}"   # prompts and texts


def component_for(tab: TabSpec, name: str) -> Any:
    """The control a person sees for `name`, found by element id, not by the field table."""
    by_elem = {c.elem_id: c for c in tab.fields.values()}
    if tab.mode.has(InputKind.MASK) and name in ("image", "mask"):
        return next(c for c in tab.fields.values() if isinstance(c, gr.ImageEditor))
    return by_elem[f"{tab.name}_{ELEMENT.get(name, name)}"]


@pytest.mark.parametrize("mode", REGISTRY.names())
@pytest.mark.parametrize("kind", ["own tab", "generic tab"])
def test_every_control_reaches_the_request_and_the_workflow_by_name(
    tabs: tuple[StudioContext, list[TabSpec]], generic_tabs: list[TabSpec], kind: str, mode: str,
    tmp_path: Path,
) -> None:
    ctx, built = tabs
    tab = next(t for t in (built if kind == "own tab" else generic_tabs) if t.name == mode)
    # What the browser sends: one value per control (a control serving two names, like the
    # inpaint editor, is one control with one value).
    sent: dict[Any, Any] = {}
    expected: dict[str, Any] = {}
    for index, name in enumerate(tab.fields):
        value = distinctive(tab, name, index, tmp_path)
        component = component_for(tab, name)
        if value is not None and component not in sent:
            sent[component] = value
        expected[name] = value
    built_request = tab.build(fields_of(tab.fields, sent))
    request = built_request.request

    for name, value in expected.items():
        declared = tab.mode.input(name)
        if name in ("randomize", "variant") or value is None:
            continue
        if declared is not None and declared.kind in (InputKind.IMAGE, InputKind.MASK):
            continue   # pictures: checked on the uploads below
        if name.startswith("image") and declared is None:
            continue   # a multi-reference slot
        got = getattr(request, name)
        assert got == value or (isinstance(got, int) and str(got) == value), (
            f"{mode}: control {name!r} → request.{name}")

    # And on into the bound template, role by role.
    prepared = ctx.registry.operation_for(request).prepare(request, SETTINGS)
    template = ctx.templates.get(mode, required=tab.mode.roles)
    files = {role: f"{role}.png" for role in prepared.uploads}
    graph = bind(template, prepared.bindings(template.roles, files), nonce="byname")
    landing = {**LANDS_IN, **({"grow": GROW_LANDS_IN[mode]} if mode in GROW_LANDS_IN else {})}
    for name, value in expected.items():
        if name not in landing or name not in tab.fields or value is None:
            continue
        role, role_field = landing[name]
        if role not in tab.mode.roles:
            continue   # e.g. the seed of a mode without a sampler
        for node_id in template.roles[role]:
            inputs = graph[node_id]["inputs"]
            got = [inputs[i] for i in _inputs_of(role, role_field) if i in inputs]
            assert got and all(g == value for g in got), (
                f"{mode}: {name}={value!r} → #{role}.{role_field} got {got}"
            )

    # The pictures: each upload slot carries the picture its control was given.
    for role, data in prepared.uploads.items():
        if role == "mask":
            continue
        index = list(tab.fields).index(role)
        uploaded = Image.open(io.BytesIO(data)).convert("RGB")
        assert uploaded.getpixel((5, 5)) == picture(index).getpixel((5, 5)), f"{mode}: #{role}"


def _inputs_of(role: str, role_field: str) -> tuple[str, ...]:
    from backend.workflows.roles import ROLES

    return ROLES[role].fields[role_field]


def test_a_swapped_field_table_is_caught(
    tabs: tuple[StudioContext, list[TabSpec]], tmp_path: Path
) -> None:
    """The check above is not vacuous: pair grow with the feather slider and it fails."""
    _ctx, built = tabs
    tab = next(t for t in built if t.name == "inpaint")
    swapped = dict(tab.fields, grow=tab.fields["feather"], feather=tab.fields["grow"])
    grow, feather = component_for(tab, "grow"), component_for(tab, "feather")
    editor = component_for(tab, "image")
    sent = {grow: 7, feather: 13, editor: distinctive(tab, "image", 0, tmp_path),
            tab.fields["prompt"]: "p"}
    request = tab.build(fields_of(swapped, sent)).request
    assert (request.grow, request.feather) == (13, 7)   # what the test above would catch
    request = tab.build(fields_of(tab.fields, sent)).request
    assert (request.grow, request.feather) == (7, 13)

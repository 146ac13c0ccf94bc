"""Bringing work back: a history click (a library item: its parameters and its input files), a
dropped studio PNG, or a studio PNG dropped on a tab's image input restore the settings (and
pictures, when known) into that mode's tab.

A restore never changes "Random seed" behind the person's back: the seed field gets the
restored seed, the message says so, and "Reuse this seed" / "Random" beside it decide.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import gradio as gr
from PIL import Image

from backend import limits
from backend.library import LibraryItem
from backend.library import png as metadata
from backend.modes import InputKind
from ui.files import served
from ui.history import describe, title_of
from ui.imaging import mask_layer
from ui.live import message_md
from ui.pages import SessionRefused
from ui.runner import QUIET, editor_value, visitor_of
from ui.tabspec import Component, Shared, TabSpec

log = logging.getLogger(__name__)


def outputs_of(specs: Mapping[str, TabSpec]) -> list[Component]:
    """Every component a restore may touch (Gradio needs them all declared)."""
    out: list[Component] = []
    for spec in specs.values():
        out += list(spec.settings_fields().values()) + list(spec.sources)
        out += [spec.panel.result, spec.panel.info, spec.controls.message]
        out += [c for c in (spec.panel.mask, spec.panel.compare) if c is not None]
    seen: set[int] = set()
    unique = []
    for comp in out:
        if id(comp) not in seen:
            seen.add(id(comp))
            unique.append(comp)
    return unique


def _choices(component: Component) -> list[Any] | None:
    if not isinstance(component, gr.Dropdown) or not component.choices:
        return None
    return [c[1] if isinstance(c, tuple | list) else c for c in component.choices]


def param_updates(spec: TabSpec, params: Mapping[str, Any]) -> dict[Component, Any]:
    out: dict[Component, Any] = {}
    for key, comp in spec.settings_fields().items():
        if key not in params:
            continue
        value = params[key]
        if key == "variant":
            value = value or "default"
        if value is None:
            continue
        allowed = _choices(comp)
        if allowed is not None and value not in allowed:
            log.info("restore: %s=%r is not offered here; kept the current one", key, value)
            continue
        out[comp] = value
    return out


def restored_sentence(spec: TabSpec, params: Mapping[str, Any], where: str) -> str:
    """What a restore did, in a sentence, including what happens to the seed."""
    text = f"Restored the {spec.mode.title} settings from {where}."
    seed = params.get("seed")
    if spec.seeded and seed is not None:
        text += (f" Seed {seed} is in Advanced: “Reuse this seed” repeats the picture; with "
                 "“Random seed” checked the next run makes a new one.")
    return text


def source_roles(spec: TabSpec) -> list[str]:
    """The library's input roles in the order of the tab's image slots."""
    roles: list[str] = []
    for inp in spec.mode.inputs:
        if inp.kind is InputKind.IMAGE:
            roles.append(inp.name)
        elif inp.kind is InputKind.IMAGES:
            roles += [f"{inp.name}{n}" for n in range(1, limits.REFERENCES.high + 1)]
    return roles


def item_updates(spec: TabSpec, item: LibraryItem) -> dict[Component, Any]:
    params = item.parameters
    out = param_updates(spec, params)
    inputs = {stored.role: stored.path for stored in item.inputs}
    for index, (slot, role) in enumerate(zip(spec.sources, source_roles(spec), strict=False)):
        path = inputs.get(role)
        if index in spec.editor_sources:
            layer = None
            if "mask" in inputs:
                try:
                    with Image.open(inputs["mask"]) as mask:
                        layer = mask_layer(mask.convert("L"))
                except OSError as exc:
                    log.info("restore: the mask could not be read: %s", exc)
            out[slot] = editor_value(served(path) if path else None, layer)
        else:
            out[slot] = served(path) if path else None
    result = served(item.result)
    out[spec.panel.result] = result
    out[spec.panel.info] = ""
    out[spec.controls.message] = message_md(restored_sentence(spec, params, "the history"),
                                            "ok")
    if spec.panel.mask is not None:
        out[spec.panel.mask] = served(item.extras["mask"]) if "mask" in item.extras else None
    if spec.panel.compare is not None:
        first = next((inputs[r] for r in source_roles(spec) if r in inputs), None)
        out[spec.panel.compare] = (served(first), result) if first else None
    return out


def wire_restore(
    shared: Shared,
    specs: Mapping[str, TabSpec],
    tabs: gr.Tabs,
    current_mode: gr.State,
    gallery: gr.Gallery,
    details: gr.Markdown,
    download: gr.DownloadButton,
    png_drop: gr.File,
) -> None:
    ctx = shared.ctx
    assert shared.browser is not None
    targets = outputs_of(specs)
    common_out = [*targets, tabs, current_mode, details, download]
    known = ctx.registry.parameter_names()

    async def on_select(browser: object, evt: gr.SelectData,
                        request: gr.Request) -> dict[Component, Any]:
        visitor = visitor_of(shared, request, browser)
        try:
            page = shared.pages.enter(visitor)
        except SessionRefused as exc:
            return {details: message_md(exc.message, "error")}
        index = evt.index if isinstance(evt.index, int) else -1
        item_id = page.history[index] if 0 <= index < len(page.history) else None
        item = await ctx.library.get(visitor.owner, item_id) if item_id else None
        gone = {details: "That picture is no longer in the library."}
        if item is None:
            return gone
        if item.mode not in specs:     # a workflow app's: shown, its controls not restored
            return {details: describe(item, title_of(ctx.registry, item.mode)),
                    download: gr.update(value=served(item.result), visible=True)}
        try:
            out = item_updates(specs[item.mode], item)
        except OSError as exc:          # its files went (pruned, deleted) after the listing
            log.info("restore: %s: %s", item.id, exc)
            return gone
        out.update({
            tabs: gr.Tabs(selected=item.mode),
            current_mode: item.mode,
            details: describe(item, title_of(ctx.registry, item.mode)),
            download: gr.update(value=served(item.result), visible=True),
        })
        return out

    gallery.select(on_select, [shared.browser], common_out, **QUIET)

    def on_png(path: str | None) -> dict[Component, Any]:
        if not path:
            return {details: gr.skip()}  # never {}: Gradio reads an empty dict as one value
        params = metadata.read_parameters(path, known)
        if not params or params.get("mode") not in specs:
            return {details: message_md(
                "No Banana Studio parameters in that file (only PNGs saved by the studio carry "
                "them).", "warn")}
        mode = str(params["mode"])
        spec = specs[mode]
        out = param_updates(spec, params)
        sentence = restored_sentence(spec, params, "the PNG")
        out.update({
            tabs: gr.Tabs(selected=mode),
            current_mode: mode,
            details: message_md(sentence, "ok"),
            spec.controls.message: message_md(sentence, "ok"),
        })
        return out

    png_drop.upload(on_png, [png_drop], common_out, **QUIET)

    # A studio PNG dropped on a tab's own image input brings that tab's settings with it.
    for spec in specs.values():
        if not spec.sources or 0 in spec.editor_sources:
            continue
        source = spec.sources[0]

        def on_upload(path: str | None, _spec: TabSpec = spec) -> dict[Component, Any]:
            params = metadata.read_parameters(path, known) if path is not None else None
            if not params or params.get("mode") != _spec.name:
                return {_spec.controls.message: gr.skip()}
            out = param_updates(_spec, params)
            out[_spec.controls.message] = message_md(
                restored_sentence(_spec, params, "the PNG you added"), "ok")
            return out

        source.upload(on_upload, [source], [*spec.settings_fields().values(),
                                            spec.controls.message], **QUIET)

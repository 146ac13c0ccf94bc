"""Bringing work back: a history click, a dropped studio PNG, or a studio PNG dropped on a
tab's image input all restore the parameters (and images, when known) into that mode's tab.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import gradio as gr
from PIL import Image

from backend.library import png as metadata
from backend.modes import ModeRegistry
from ui import history as hist
from ui.runner import editor_value, message_md
from ui.tabspec import TabSpec

log = logging.getLogger(__name__)


def outputs_of(specs: Mapping[str, TabSpec]) -> list[Any]:
    """Every component a restore may touch (Gradio needs them all declared)."""
    out: list[Any] = []
    for spec in specs.values():
        out += list(spec.settings_fields().values()) + list(spec.sources)
        out += [spec.panel.result, spec.panel.preview, spec.panel.info, spec.controls.message]
        if spec.advanced is not None:
            out.append(spec.advanced.randomize)
        out += [c for c in (spec.panel.mask, spec.panel.compare) if c is not None]
    seen: set[int] = set()
    unique = []
    for comp in out:
        if id(comp) not in seen:
            seen.add(id(comp))
            unique.append(comp)
    return unique


def _choices(component: Any) -> list[Any] | None:
    if not isinstance(component, gr.Dropdown) or not component.choices:
        return None
    return [c[1] if isinstance(c, tuple | list) else c for c in component.choices]


def param_updates(spec: TabSpec, params: Mapping[str, Any]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
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
    if spec.advanced is not None and params.get("seed") is not None:
        out[spec.advanced.randomize] = False  # a restored seed is meant to be reused
    return out


def entry_updates(spec: TabSpec, entry: hist.HistoryEntry) -> dict[Any, Any]:
    out = param_updates(spec, entry.params)
    for i, path in enumerate(entry.sources[: len(spec.sources)]):
        out[spec.sources[i]] = editor_value(path) if i in spec.editor_sources else path
    out[spec.panel.result] = gr.update(value=entry.path, visible=True)
    out[spec.panel.preview] = gr.update(visible=False)
    out[spec.panel.info] = entry.info
    out[spec.controls.message] = ""
    if spec.panel.mask is not None:
        out[spec.panel.mask] = entry.extras.get("mask")
    if spec.panel.compare is not None and entry.sources:
        try:
            after = Image.open(entry.path)
            after.load()
            before = Image.open(entry.sources[0]).convert("RGB").resize(after.size)
            out[spec.panel.compare] = (before, after)
        except OSError as exc:
            log.info("compare unavailable: %s", exc)
    return out


def wire_restore(
    registry: ModeRegistry,
    specs: Mapping[str, TabSpec],
    tabs: gr.Tabs,
    current_mode: gr.State,
    history: gr.State,
    gallery: gr.Gallery,
    details: gr.Markdown,
    download: gr.DownloadButton,
    png_drop: gr.File,
) -> None:
    targets = outputs_of(specs)
    common_out = [*targets, tabs, current_mode, details, download]
    known = registry.parameter_names()

    def on_select(entries: list[hist.HistoryEntry] | None, evt: gr.SelectData) -> dict[Any, Any]:
        entry = hist.find(entries, evt.index)
        if entry is None or entry.mode not in specs:
            return {details: "That picture is no longer in this session's history."}
        out = entry_updates(specs[entry.mode], entry)
        out.update({
            tabs: gr.Tabs(selected=entry.mode),
            current_mode: entry.mode,
            details: hist.describe(entry),
            download: gr.update(value=entry.path, visible=True),
        })
        return out

    gallery.select(on_select, [history], common_out, show_progress="hidden",
                   api_visibility="private")

    def on_png(path: str | None) -> dict[Any, Any]:
        if not path:
            return {details: gr.skip()}  # never {}: Gradio reads an empty dict as one value
        params = metadata.read_parameters(path, known)
        if not params or params.get("mode") not in specs:
            return {details: message_md(
                "No Banana Studio parameters in that file (only PNGs saved by the studio carry "
                "them).", "warn")}
        mode = params["mode"]
        out = param_updates(specs[mode], params)
        spec = specs[mode]
        out.update({
            tabs: gr.Tabs(selected=mode),
            current_mode: mode,
            details: message_md(
                f"Restored the {spec.mode.title} settings from the PNG"
                + (f" (seed {params['seed']})." if params.get("seed") is not None else "."),
                "ok"),
            spec.controls.message: "",
        })
        return out

    png_drop.upload(on_png, [png_drop], common_out, show_progress="hidden",
                    api_visibility="private")

    # A studio PNG dropped on a tab's own image input brings that tab's settings with it.
    for spec in specs.values():
        if not spec.sources or 0 in spec.editor_sources:
            continue
        source = spec.sources[0]

        def on_upload(path: str | None, _spec: TabSpec = spec) -> dict[Any, Any]:
            params = metadata.read_parameters(path, known) if path is not None else None
            if not params or params.get("mode") != _spec.mode:
                return {_spec.controls.message: gr.skip()}
            out = param_updates(_spec, params)
            out[_spec.controls.message] = message_md(
                "This PNG came from the studio: its settings were restored.", "ok")
            return out

        source.upload(on_upload, [source], list(spec.settings_fields().values()) + (
            [spec.advanced.randomize] if spec.advanced is not None else []
        ) + [spec.controls.message], show_progress="hidden", api_visibility="private")

"""The studio page: header, one tab per registered mode, per-session history, status sidebar.

`build_ui(ctx)` only lays out and wires; every job goes through `ctx.studio.run` in the
shared loop of `ui/runner.py`. A mode's tab is `ui/tabs/<mode>.py` when that module exists,
else the generic tab built from the mode's declared inputs (`ui/generic_tab.py`).
`launch_options()` is what `gr.mount_gradio_app` needs for the look (Gradio 6 takes
theme/css/head there, not on Blocks).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from typing import Any

import gradio as gr

from backend.context import StudioContext
from ui import generic_tab, restore, sidebar, style
from ui import history as hist
from ui.runner import wire_run, wire_send
from ui.session import SessionJobs
from ui.tabspec import Shared, Spec, TabBuilder, TabSpec

log = logging.getLogger(__name__)

# Small handlers (previews, masks, restores) may run side by side; runs have their own limit.
DEFAULT_CONCURRENCY = 4
QUEUE_MAX = 64
# Inline so the header never depends on an emoji font or a network fetch.
LOGO = (
    "<svg viewBox='0 0 64 64' width='34' height='34' aria-hidden='true'>"
    "<path d='M8 36 C 16 60, 50 58, 57 27 C 49 41, 27 46, 12 31 Z' fill='#f7c948' "
    "stroke='#8d5b0b' stroke-width='2.5' stroke-linejoin='round'/>"
    "<path d='M14 36 C 24 47, 42 47, 52 36' fill='none' stroke='#de911d' stroke-width='2'/>"
    "<path d='M57 27 l2 -7' stroke='#5c3d0a' stroke-width='3.5' stroke-linecap='round'/></svg>"
)


def launch_options() -> dict[str, Any]:
    return {"theme": style.theme(), "css": style.CSS, "head": style.HEAD}


def tab_builder(mode: Spec) -> TabBuilder:
    """`ui/tabs/<mode>.py`'s `build` when the mode has a screen of its own, else the generic
    tab."""
    name = f"ui.tabs.{mode.name.replace('-', '_')}"
    if importlib.util.find_spec(name) is None:
        return generic_tab.build
    builder: TabBuilder = importlib.import_module(name).build
    return builder


def build_ui(ctx: StudioContext) -> gr.Blocks:
    shared = Shared(ctx=ctx, store=hist.ResultStore(), sessions=SessionJobs())
    modes = list(ctx.registry)
    with gr.Blocks(title="Banana Studio", fill_width=True, delete_cache=(3600, 86400)) as demo:
        current_mode = gr.State(modes[0].name if modes else "")
        shared.history = gr.State([])
        side = sidebar.build_sidebar(demo, ctx, shared.sessions, current_mode)
        gr.HTML(
            f"<div id='app-header'><span class='logo'>{LOGO}</span><h1>Banana Studio</h1>"
            "<span class='subtitle'>Generate and edit pictures with Qwen-Image on your own "
            "ComfyUI — right here on the LAN.</span></div>",
            padding=False,
        )
        specs: dict[str, TabSpec] = {}
        tab_items: dict[str, gr.Tab] = {}
        with gr.Tabs(elem_id="mode-tabs") as tabs:
            for mode in modes:
                with gr.Tab(mode.title, id=mode.name, elem_id=f"tab_{mode.name}") as tab:
                    specs[mode.name] = tab_builder(mode)(shared, mode)
                tab_items[mode.name] = tab
        with (
            gr.Accordion("History — this session", open=True, elem_id="history"),
            gr.Row(equal_height=False),
        ):
            shared.gallery = gr.Gallery(
                label="Results (newest first) — click one to bring it back with its settings",
                columns=8,
                height=230,
                allow_preview=False,
                object_fit="cover",
                fit_columns=False,
                format="png",
                interactive=False,
                scale=4,
                elem_id="history-gallery",
            )
            with gr.Column(scale=2, min_width=260):
                details = gr.Markdown(
                    "Every result of this session lands here. PNGs carry their settings "
                    "and the ComfyUI graph.",
                    elem_id="history-details",
                )
                download = gr.DownloadButton(
                    "Download PNG", visible=False, size="sm", elem_id="history-download"
                )
                png_drop = gr.File(
                    label="Restore from PNG",
                    file_types=[".png"],
                    type="filepath",
                    height=110,
                    elem_id="restore-png",
                )

        for name, tab in tab_items.items():
            tab.select(lambda m=name: m, None, current_mode, queue=False, api_visibility="private")
        for spec in specs.values():
            wire_run(shared, spec).then(
                side.after_run, None, side.status, queue=False, show_progress="hidden",
                api_visibility="private",
            )
        wire_send(specs, tabs, current_mode)
        restore.wire_restore(
            ctx.registry, specs, tabs, current_mode, shared.history, shared.gallery, details,
            download, png_drop,
        )
    demo.queue(default_concurrency_limit=DEFAULT_CONCURRENCY, max_size=QUEUE_MAX)
    return demo

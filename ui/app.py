"""The studio page: header, the person's queue strip, one tab per registered mode, the history
strip (the library's newest items for the owner), and the status sidebar.

`build_ui(ctx)` only lays out and wires. Every job goes through `ctx.desk` (ui/runner.py hands
it in; ui/follow.py follows it into the page); who is asking is ui/identity.py's business and
what the studio keeps per page is ui/pages.py's. A mode's tab is `ui/tabs/<mode>.py` when that
module exists, else the generic tab built from the mode's declared inputs
(`ui/generic_tab.py`). `launch_options()` is what `gr.mount_gradio_app` needs for the look
(Gradio 6 takes theme/css/head there, not on Blocks).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from dataclasses import dataclass
from typing import Any

import gradio as gr

from backend.apps import is_app_mode
from backend.context import StudioContext
from ui import app_tabs, chat_tab, generic_tab, library_tab, restore, sidebar, style
from ui.follow import Follower
from ui.history import history_of
from ui.identity import BROWSER_STORAGE_KEY, new_browser_id, valid_browser_id
from ui.layout import variants_of
from ui.live import IDLE_STATUS, message_md
from ui.pages import Pages, SessionRefused
from ui.runner import QUICK, QUIET, visitor_of, wire_run, wire_send
from ui.tabspec import Shared, Spec, TabBuilder, TabSpec

log = logging.getLogger(__name__)

# Small handlers (previews, masks, restores) may run side by side; a job never holds a slot
# (the desk runs it; the follower has no limit and only awaits events).
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
KEYS_HELP = ("<kbd>Ctrl</kbd>/<kbd>⌘</kbd>+<kbd>Enter</kbd> runs the open tab · <kbd>Esc</kbd> "
             "stops its job")


def launch_options() -> dict[str, Any]:
    return {"theme": style.theme(), "css": style.CSS + chat_tab.CSS, "head": style.HEAD}


def tab_builder(mode: Spec) -> TabBuilder:
    """`ui/tabs/<mode>.py`'s `build` when the mode has a screen of its own, else the generic
    tab."""
    name = f"ui.tabs.{mode.name.replace('-', '_')}"
    if importlib.util.find_spec(name) is None:
        return generic_tab.build
    builder: TabBuilder = importlib.import_module(name).build
    return builder


@dataclass(frozen=True)
class StudioPage:
    """The built page and the handles tests drive it through."""

    demo: gr.Blocks
    shared: Shared
    specs: dict[str, TabSpec]
    follower: Follower


def build_ui(ctx: StudioContext) -> gr.Blocks:
    return build_page(ctx).demo


def build_page(ctx: StudioContext) -> StudioPage:
    pages = Pages(IDLE_STATUS)
    shared = Shared(ctx=ctx, pages=pages)
    modes = [m for m in ctx.registry if not is_app_mode(m.name)]   # apps: the Apps tab
    with gr.Blocks(title="Banana Studio", fill_width=True, delete_cache=(3600, 86400)) as demo:
        # The browser's random id (per-browser libraries, and the person without a login).
        # A stable secret: a restart must still read what the browser kept.
        browser = shared.browser = gr.BrowserState(
            None, storage_key=BROWSER_STORAGE_KEY, secret=ctx.client.studio_id or "banana")
        current_mode = gr.State(modes[0].name if modes else "")
        side = sidebar.build_sidebar(demo, ctx, current_mode)
        phone = gr.HTML("", elem_id="phone-status", js_on_load=style.OPEN_SIDEBAR_JS)
        gr.HTML(
            f"<div id='app-header'><span class='logo'>{LOGO}</span><h1>Banana Studio</h1>"
            "<span class='subtitle'>Generate and edit pictures with Qwen-Image on your own "
            f"ComfyUI — right here on the LAN.</span><span class='keys'>{KEYS_HELP}</span></div>",
            padding=False,
        )
        page_msg = gr.HTML("", elem_id="page-msg", visible=False)
        strip = gr.HTML("", elem_id="queue-strip", js_on_load=style.CANCEL_JS)
        specs: dict[str, TabSpec] = {}
        tab_items: dict[str, gr.Tab] = {}
        with gr.Tabs(elem_id="mode-tabs") as tabs:
            for mode in modes:
                with gr.Tab(mode.title, id=mode.name, elem_id=f"tab_{mode.name}") as tab:
                    specs[mode.name] = tab_builder(mode)(shared, mode)
                tab_items[mode.name] = tab
            apps_tab = app_tabs.build(shared)
            with gr.Tab("Chat", id="chat", elem_id="tab_chat"):
                chat = chat_tab.build(shared)
            library = library_tab.build(shared, specs)
        with (
            gr.Accordion("History", open=True, elem_id="history"),
            gr.Row(equal_height=False),
        ):
            gallery = gr.Gallery(
                label="Your latest results (newest first) — click one to bring it back with its "
                      "settings",
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
                    "Every result lands here and in the library. PNGs carry their settings "
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
        history_token = gr.Textbox("0", visible="hidden", elem_id="history-token")
        follower = Follower(ctx, pages, specs, strip, history_token)
        apps_tab.follower = follower

        for name, tab in tab_items.items():
            wire_tab_select(ctx, tab, name, specs[name], current_mode)
        for spec in specs.values():
            wire_run(shared, spec, follower)
            spec.panel.result.change(None, None, None, js=style.SCROLL_TO_RESULT_JS,
                                     api_visibility="private")
        wire_send(specs, tabs, current_mode, shared)
        chat_tab.wire(shared, chat, specs, tabs, current_mode, history_token)
        restore.wire_restore(shared, specs, tabs, current_mode, gallery, details, download,
                             png_drop)
        library_tab.wire(shared, library, specs, tabs, current_mode, gallery)
        wire_page(shared, demo, follower, gallery, history_token, strip, page_msg)
        sidebar.wire_tick(demo, ctx, side, follower, browser, phone)
        demo.load(None, None, None, js=style.NARROW_SIDEBAR_JS)
    demo.queue(default_concurrency_limit=DEFAULT_CONCURRENCY, max_size=QUEUE_MAX)
    return StudioPage(demo, shared, specs, follower)


def wire_tab_select(
    ctx: StudioContext, tab: gr.Tab, name: str, spec: TabSpec, current_mode: gr.State
) -> None:
    """Selecting a tab makes it the current mode and re-reads its template variants, so a
    variant file added while the studio runs is offered without a restart."""
    if spec.advanced is None:
        tab.select(lambda: name, None, current_mode, **QUIET)
        return
    variant = spec.advanced.variant

    def on_select(chosen: str | None) -> tuple[str, Any]:
        names = variants_of(ctx, name)
        value = chosen if chosen in names else names[0]
        return name, gr.update(choices=names, value=value, interactive=len(names) > 1)

    tab.select(on_select, [variant], [current_mode, variant], **QUIET)


def wire_page(
    shared: Shared,
    demo: gr.Blocks,
    follower: Follower,
    gallery: gr.Gallery,
    history_token: gr.Textbox,
    strip: gr.HTML,
    page_msg: gr.HTML,
) -> None:
    """Page load (the browser id, the history, then the follower for jobs still running),
    the history's refresh, the queue strip's cancel buttons, and the page going away."""
    ctx, pages = shared.ctx, shared.pages
    assert shared.browser is not None
    browser = shared.browser

    async def on_load(browser_id: object, request: gr.Request) -> tuple[Any, ...]:
        browser_id = valid_browser_id(browser_id) or new_browser_id()
        visitor = visitor_of(shared, request, browser_id)
        try:
            page = pages.enter(visitor)
        except SessionRefused as exc:
            return browser_id, gr.skip(), gr.update(value=message_md(exc.message, "error"),
                                                    visible=True)
        items = await history_of(ctx.library, visitor, page, ctx.registry)
        return browser_id, gr.skip() if items is None else items, gr.skip()

    demo.load(on_load, [browser], [browser, gallery, page_msg], **QUIET).then(
        follower.stream, [browser], follower.outputs, show_progress="hidden",
        concurrency_limit=None, api_visibility="private")

    async def on_saved(browser_id: object, request: gr.Request) -> Any:
        visitor = visitor_of(shared, request, browser_id)
        try:
            page = pages.enter(visitor)
        except SessionRefused:
            return gr.skip()
        items = await history_of(ctx.library, visitor, page, ctx.registry)
        return gr.skip() if items is None else items

    history_token.change(on_saved, [browser], [gallery], **QUIET)

    async def on_cancel(browser_id: object, evt: gr.EventData, request: gr.Request) -> str:
        visitor = visitor_of(shared, request, browser_id)
        job_id = getattr(evt, "job", None)      # the strip's button sends {job: id}
        if isinstance(job_id, str):
            gr.Info(ctx.desk.stop(visitor.person, job_id).value)
        return follower.strip_for(visitor)

    strip.click(on_cancel, [browser], [strip], **QUICK)

    async def on_unload(request: gr.Request) -> None:
        page_gone(shared, request.session_hash or "", request.username or None)

    demo.unload(on_unload)


def page_gone(shared: Shared, session: str, user: str | None) -> int:
    """A page closed (or reloaded): forget it, and stop its jobs when their results would be
    lost with it (STUDIO_LIBRARY=off without a login). Returns how many were stopped."""
    page = shared.pages.drop(session, user)
    if page is None or not page.visitor.session_bound:
        return 0        # the library keeps the results: a reload shows them
    visitor, desk = page.visitor, shared.ctx.desk
    jobs = [j for j in desk.active(visitor.person) if j.ticket.who.owner == visitor.owner]
    for job in jobs:
        desk.stop(visitor.person, job.id)
    return len(jobs)


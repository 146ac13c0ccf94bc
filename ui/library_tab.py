"""The Library tab: everything the person made, newest first, a page at a time (the library's
keyset paging: page 200 costs what page 1 does), searched by prompt words (FTS) and filtered
by mode, date and star. A click opens the picture with its parameters and lineage, and the
actions: restore it into its tab, send it to another tab, download, star, delete (after a
confirm step).

Who is asking is worked out again on every event (ui/identity.py, and `Pages.enter` refuses a
session replayed under another login); the page's state only holds what it looks at (filters,
cursors, the open id), never whose it is. Every file is shown through the owner-checked route
(backend/api/library_files.py); only a restore or a send-to puts the files into Gradio's cache,
like the history strip does.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.blocks import Block

from backend.api.library_files import file_url
from backend.library import ItemQuery, LibraryError, LibraryItem
from ui.files import served
from ui.history import history_of, title_of
from ui.library_view import (
    DETAIL_CSS,
    GRID_CSS,
    NO_SELECTION,
    PAGE_STYLE,
    PICK_JS,
    UrlOf,
    detail_html,
    grid_html,
    info_html,
)
from ui.live import message_md
from ui.pages import Page, SessionRefused
from ui.restore import item_updates, outputs_of, restored_sentence
from ui.runner import QUIET, editor_value, visitor_of
from ui.tabspec import Shared, TabSpec

log = logging.getLogger(__name__)

PAGE_SIZE = 48
ALL_MODES = "all"
DAY_S = 86400.0
DATES: dict[str, float | None] = {"All time": None, "Today": 0.0, "Last 7 days": 7 * DAY_S,
                                  "Last 30 days": 30 * DAY_S}
Updates = dict[Block, Any]    # components, and the Tabs/Row/Column they show or pick


@dataclass(frozen=True)
class Filters:
    text: str = ""
    mode: str = ALL_MODES
    date: str = "All time"
    starred: bool = False

    def query(self, before: str | None, now: float) -> ItemQuery:
        return ItemQuery(text=self.text.strip(), mode=None if self.mode == ALL_MODES else self.mode,
                         since=since(self.date, now), starred=True if self.starred else None,
                         before=before, limit=PAGE_SIZE)


def since(date: str, now: float) -> float | None:
    span = DATES.get(date)
    if span is None:
        return None
    if span == 0.0:             # today: since local midnight
        day = time.localtime(now)
        return time.mktime((day.tm_year, day.tm_mon, day.tm_mday, 0, 0, 0, 0, 0, -1))
    return now - span


@dataclass(frozen=True)
class Browse:
    """What one page's Library shows (gr.State): filters, the cursor of each page visited so
    far (`cursors[i]` is page i's `before`), the page shown, the open item."""

    filters: Filters = Filters()
    cursors: tuple[str | None, ...] = (None,)
    index: int = 0
    open_id: str | None = None


@dataclass
class LibraryTab:
    """The tab's components (tests and ui/app.py reach them)."""

    tab: gr.Tab
    search: gr.Textbox
    mode: gr.Dropdown
    date: gr.Dropdown
    starred: gr.Checkbox
    count: gr.HTML
    grid: gr.HTML
    newer: gr.Button
    older: gr.Button
    detail: gr.HTML
    actions: gr.Column
    restore: gr.Button
    star: gr.Button
    send_target: gr.Dropdown
    send: gr.Button
    delete: gr.Button
    confirm: gr.Row
    delete_yes: gr.Button
    delete_no: gr.Button
    message: gr.HTML
    info: gr.HTML
    state: gr.State


def build(shared: Shared, specs: Mapping[str, TabSpec]) -> LibraryTab:
    """Lay out the tab (call inside the page's gr.Tabs); `wire` connects it."""
    registry = shared.ctx.registry
    modes = [(spec.title, spec.name) for spec in registry]
    targets = [(spec.mode.title, name) for name, spec in specs.items() if spec.sources]
    with gr.Tab("Library", id="library", elem_id="tab_library") as tab:
        with gr.Row(elem_id="library-filters", equal_height=True):
            search = gr.Textbox(placeholder="Search prompts: words or their beginnings, then Enter",
                                show_label=False, container=False, scale=4, min_width=200,
                                elem_id="library-search")
            mode = gr.Dropdown([("All modes", ALL_MODES), *modes], value=ALL_MODES,
                               show_label=False, container=False, scale=1, min_width=140,
                               elem_id="library-mode")
            date = gr.Dropdown(list(DATES), value="All time", show_label=False,
                               container=False, scale=1, min_width=130, elem_id="library-date")
            starred = gr.Checkbox(label="★ Starred only", scale=1, min_width=130,
                                  elem_id="library-starred")
        with gr.Row(equal_height=False, elem_id="library-body"):
            with gr.Column(scale=3, min_width=320):
                count = gr.HTML("", elem_id="library-count")
                grid = gr.HTML("", elem_id="library-grid", js_on_load=PICK_JS,
                               css_template=GRID_CSS, head=PAGE_STYLE)
                with gr.Row(elem_id="library-pager"):
                    newer = gr.Button("← Newer", size="sm", interactive=False, min_width=100,
                                      elem_id="library-newer")
                    older = gr.Button("Older →", size="sm", interactive=False, min_width=100,
                                      elem_id="library-older")
            with gr.Column(scale=2, min_width=300, elem_id="library-side"):
                detail = gr.HTML(NO_SELECTION, elem_id="library-detail", js_on_load="",
                                 css_template=DETAIL_CSS)
                with gr.Column(visible=False, elem_id="library-actions") as actions:
                    with gr.Row():
                        restore = gr.Button("Restore in its tab", variant="primary", size="sm",
                                            elem_id="library-restore")
                        star = gr.Button("☆ Star", size="sm", elem_id="library-star")
                    with gr.Row(equal_height=True):
                        send_target = gr.Dropdown(targets, value=targets[0][1] if targets else None,
                                                  show_label=False, container=False, scale=2,
                                                  min_width=120, elem_id="library-send-target")
                        send = gr.Button("Send the picture there", size="sm", scale=2,
                                         min_width=120, elem_id="library-send")
                    delete = gr.Button("Delete…", variant="stop", size="sm",
                                       elem_id="library-delete")
                    with gr.Row(visible=False, elem_id="library-confirm") as confirm:
                        gr.HTML("<b>Delete this picture and its files?</b> It cannot be undone.")
                        delete_yes = gr.Button("Yes, delete", variant="stop", size="sm",
                                               elem_id="library-delete-yes")
                        delete_no = gr.Button("Keep it", size="sm", elem_id="library-delete-no")
                message = gr.HTML("", elem_id="library-msg")
                info = gr.HTML("", elem_id="library-info", js_on_load=PICK_JS,
                               css_template=DETAIL_CSS)
        state = gr.State(Browse())
    return LibraryTab(tab, search, mode, date, starred, count, grid, newer, older, detail,
                      actions, restore, star, send_target, send, delete, confirm, delete_yes,
                      delete_no, message, info, state)


# -- what a page may see --------------------------------------------------------------------
@dataclass(frozen=True)
class Asker:
    owner: str
    page: Page


def asker(shared: Shared, request: gr.Request, browser: object) -> Asker:
    """Raises SessionRefused (a replayed session under another login)."""
    visitor = visitor_of(shared, request, browser)
    return Asker(visitor.owner, shared.pages.enter(visitor))


def url_maker(shared: Shared, owner: str) -> UrlOf:
    library = shared.ctx.library

    def url_of(path: Path, download: bool) -> str:
        return file_url(library, owner, path, download=download)

    return url_of


def _title(shared: Shared) -> Any:
    registry = shared.ctx.registry
    return lambda mode: title_of(registry, mode)


async def listing(shared: Shared, owner: str, browse: Browse) -> tuple[Browse, str, str, bool,
                                                                         bool]:
    """(browse with the next page's cursor known, count line, grid, newer?, older?)."""
    filters = browse.filters
    page = await shared.ctx.library.page(
        owner, filters.query(browse.cursors[browse.index], time.time()))
    cursors = browse.cursors[: browse.index + 1]
    if page.next_cursor is not None:
        cursors += (page.next_cursor,)
    browse = replace(browse, cursors=cursors)
    total = page.total or 0
    pages = max(1, math.ceil(total / PAGE_SIZE))
    filtered = filters != Filters()
    noun = "picture" if total == 1 else "pictures"
    if filtered:
        noun += " matches" if total == 1 else " match"
    count = (f"<div class='hint'><b>{total}</b> {noun}"
             + (f" · page {browse.index + 1} of {pages}" if pages > 1 else "") + "</div>")
    if not total:
        empty = ("Nothing matches these filters." if filtered else
                 "No pictures yet: every result you make lands here, and stays.")
    else:
        empty = "This page is empty: go back to newer pictures."
    grid = grid_html(page.items, url_maker(shared, owner), _title(shared), browse.open_id, empty)
    return browse, count, grid, browse.index > 0, page.next_cursor is not None


# -- wiring -----------------------------------------------------------------------------------
def wire(shared: Shared, lib: LibraryTab, specs: Mapping[str, TabSpec], tabs: gr.Tabs,
         current_mode: gr.State, history: gr.Gallery) -> None:
    ctx = shared.ctx
    assert shared.browser is not None
    browser = shared.browser
    list_out = [lib.state, lib.count, lib.grid, lib.newer, lib.older, lib.message]
    open_out = [lib.state, lib.detail, lib.info, lib.actions, lib.star, lib.confirm,
                lib.message]

    async def show(browse: Browse, request: gr.Request, browser_id: object) -> Updates:
        try:
            who = asker(shared, request, browser_id)
            browse, count, grid, newer, older = await listing(shared, who.owner, browse)
        except SessionRefused as exc:
            return {lib.message: message_md(exc.message, "error")}
        except LibraryError as exc:
            return {lib.message: message_md(exc.message, "error")}
        return {lib.state: browse, lib.count: count, lib.grid: grid,
                lib.newer: gr.update(interactive=newer), lib.older: gr.update(interactive=older),
                lib.message: ""}

    async def on_filter(text: str, mode: str, date: str, starred: bool, browse: Browse,
                        browser_id: object, request: gr.Request) -> Updates:
        filters = Filters(text or "", mode or ALL_MODES, date or "All time", bool(starred))
        return await show(replace(browse, filters=filters, cursors=(None,), index=0),
                          request, browser_id)

    filter_in = [lib.search, lib.mode, lib.date, lib.starred, lib.state, browser]
    lib.tab.select(on_filter, filter_in, list_out, **QUIET)
    lib.search.submit(on_filter, filter_in, list_out, **QUIET)
    for control in (lib.mode, lib.date, lib.starred):
        control.change(on_filter, filter_in, list_out, **QUIET)

    async def on_older(browse: Browse, browser_id: object, request: gr.Request) -> Updates:
        if browse.index + 1 >= len(browse.cursors):
            return {lib.message: gr.skip()}
        return await show(replace(browse, index=browse.index + 1), request, browser_id)

    async def on_newer(browse: Browse, browser_id: object, request: gr.Request) -> Updates:
        return await show(replace(browse, index=max(0, browse.index - 1)), request, browser_id)

    lib.older.click(on_older, [lib.state, browser], list_out, **QUIET)
    lib.newer.click(on_newer, [lib.state, browser], list_out, **QUIET)

    async def opened(who: Asker, browse: Browse, item_id: str | None, note: str = "") -> Updates:
        lineage = await ctx.library.lineage(who.owner, item_id) if item_id else None
        if lineage is None:
            return {lib.state: replace(browse, open_id=None), lib.detail: NO_SELECTION,
                    lib.info: "", lib.actions: gr.update(visible=False), lib.star: gr.skip(),
                    lib.confirm: gr.update(visible=False),
                    lib.message: note or message_md("That picture is not in your library.",
                                                    "warn")}
        item, url_of = lineage.item, url_maker(shared, who.owner)
        return {lib.state: replace(browse, open_id=item.id),
                lib.detail: detail_html(item, url_of, _title(shared)),
                lib.info: info_html(lineage, url_of, _title(shared)),
                lib.actions: gr.update(visible=True),
                lib.star: "★ Starred" if item.starred else "☆ Star",
                lib.confirm: gr.update(visible=False), lib.message: note}

    async def on_open(browse: Browse, browser_id: object, evt: gr.EventData,
                      request: gr.Request) -> Updates:
        item_id = getattr(evt, "item", None)        # PICK_JS sends {item: id}
        try:
            who = asker(shared, request, browser_id)
        except SessionRefused as exc:
            return {lib.message: message_md(exc.message, "error")}
        return await opened(who, browse, item_id if isinstance(item_id, str) else None)

    lib.grid.click(on_open, [lib.state, browser], open_out, **QUIET)
    lib.info.click(on_open, [lib.state, browser], open_out, **QUIET)     # lineage chips

    async def open_item(browse: Browse, browser_id: object,
                        request: gr.Request) -> tuple[Asker, LibraryItem] | str:
        """The open item if it is still the asker's, else the sentence to show."""
        try:
            who = asker(shared, request, browser_id)
        except SessionRefused as exc:
            return message_md(exc.message, "error")
        item = await ctx.library.get(who.owner, browse.open_id) if browse.open_id else None
        if item is None:
            return message_md("That picture is not in your library any more.", "warn")
        return who, item

    async def on_star(browse: Browse, browser_id: object, request: gr.Request) -> Updates:
        found = await open_item(browse, browser_id, request)
        if isinstance(found, str):
            return {lib.message: found}
        who, item = found
        await ctx.library.set_star(who.owner, item.id, not item.starred)
        out = await opened(who, browse, item.id)
        listed = await show(browse, request, browser_id)    # the card's star
        return {**listed, **out}

    lib.star.click(on_star, [lib.state, browser], [*open_out, *list_out[1:5]], **QUIET)

    lib.delete.click(lambda: gr.update(visible=True), None, [lib.confirm], **QUIET)
    lib.delete_no.click(lambda: gr.update(visible=False), None, [lib.confirm], **QUIET)

    async def on_delete(browse: Browse, browser_id: object, request: gr.Request) -> Updates:
        found = await open_item(browse, browser_id, request)
        if isinstance(found, str):
            return {lib.message: found, lib.confirm: gr.update(visible=False)}
        who, item = found
        deleted = await ctx.library.delete(who.owner, item.id)
        note = message_md("Deleted the picture and its files." if deleted else
                          "That picture was already gone.", "ok" if deleted else "warn")
        out = await opened(who, replace(browse, open_id=None), None, note)
        listed = await show(replace(browse, open_id=None), request, browser_id)
        strip = await history_of(ctx.library, visitor_of(shared, request, browser_id), who.page,
                                 ctx.registry)
        return {**listed, **out, lib.message: note,
                history: gr.skip() if strip is None else strip}

    lib.delete_yes.click(on_delete, [lib.state, browser],
                         [*open_out, *list_out[1:5], history], **QUIET)

    restore_out = [*outputs_of(specs), tabs, current_mode, lib.message]

    async def on_restore(browse: Browse, browser_id: object, request: gr.Request) -> Updates:
        found = await open_item(browse, browser_id, request)
        if isinstance(found, str):
            return {lib.message: found}
        _, item = found
        spec = specs.get(item.mode)
        if spec is None:
            return {lib.message: message_md("This studio has no tab for that mode.", "warn")}
        try:
            out: Updates = {comp: value for comp, value in item_updates(spec, item).items()}
        except OSError as exc:          # its files went (pruned, deleted) meanwhile
            log.info("library restore: %s: %s", item.id, exc)
            return {lib.message: message_md("That picture's files are gone.", "warn")}
        out[spec.controls.message] = message_md(
            restored_sentence(spec, item.parameters, "the library"), "ok")
        return {**out, tabs: gr.Tabs(selected=item.mode), current_mode: item.mode,
                lib.message: ""}

    lib.restore.click(on_restore, [lib.state, browser], restore_out, **QUIET)

    send_out = [*{id(s.sources[0]): s.sources[0] for s in specs.values() if s.sources}.values(),
                tabs, current_mode, lib.message]

    async def on_send(browse: Browse, target: str | None, browser_id: object,
                      request: gr.Request) -> Updates:
        found = await open_item(browse, browser_id, request)
        if isinstance(found, str):
            return {lib.message: found}
        dest = specs.get(target or "")
        if dest is None or not dest.sources:
            return {lib.message: message_md("Pick a tab to send the picture to.", "warn")}
        try:
            path = served(found[1].result)
        except OSError:
            return {lib.message: message_md("That picture's files are gone.", "warn")}
        value = editor_value(path) if 0 in dest.editor_sources else path
        return {dest.sources[0]: value, tabs: gr.Tabs(selected=dest.name),
                current_mode: dest.name, lib.message: ""}

    lib.send.click(on_send, [lib.state, lib.send_target, browser], send_out, **QUIET)

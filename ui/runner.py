"""Running a tab: Run hands the job (or a batch) to the desk and returns at once; the page's
follower (ui/follow.py) streams its progress; when it ends, the tab's `landed` token changes
and `show_landed` puts the results in the tab (from the library's PNG, or the picture itself
when it could not be kept). Stop stops the tab's running job by id and says what happened.

Every handler here is quick: none waits for a job. Stop and the grid's pick skip Gradio's
queue (`QUIET`); Run and the landed results go through it without a limit (`QUICK`), because
only queued events can show a toast (gr.Warning).
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Mapping
from typing import Any

import gradio as gr
from PIL import Image

from backend import limits
from backend.desk import Job, JobState, Saved
from backend.events import Failed, Finished
from backend.library import LibraryItem
from backend.redaction import scrub
from backend.requests import InvalidRequest, RequestBase
from backend.scheduler import QueueFull
from ui.files import served
from ui.follow import Follower
from ui.identity import Visitor, visitor_for
from ui.live import info_line, message_md, status_html
from ui.mask_moves import wire_mask_moves
from ui.pages import SessionRefused, Shown, TabState
from ui.prompt_tools import remember, wire_prompt_tools
from ui.tabspec import Component, Shared, TabSpec, fields_of
from ui.upload_checks import wire_upload_checks

log = logging.getLogger(__name__)

Updates = dict[Component, Any]
QUIET: dict[str, Any] = {"queue": False, "show_progress": "hidden", "api_visibility": "private"}
QUICK: dict[str, Any] = {"concurrency_limit": None, "show_progress": "hidden",
                         "api_visibility": "private"}


def redact(text: str, comfy_url: str) -> str:
    """The browser never learns ComfyUI's address, whatever an error message says."""
    return scrub(text, comfy_url).replace("ComfyUI at ComfyUI", "ComfyUI")


def fit_warning(shared: Shared, tab: TabSpec) -> str | None:
    """A sentence when this mode's peak VRAM will not fit in what is free right now."""
    try:
        status = shared.ctx.monitor.snapshot().modes.get(tab.name)
    except Exception:  # the sidebar shows monitor trouble; a run must not fail on it
        return None
    if status is None or status.fits is not False:
        return None
    return f"{tab.mode.title} may not fit in free VRAM: {status.note}."


def batch_of(request: RequestBase, count: int) -> list[RequestBase]:
    """`count` copies with consecutive seeds (from the asked seed, or a random one)."""
    if count <= 1:
        return [request]
    high = limits.MAX_SEED - count + 1
    base = request.seed if request.seed is not None else secrets.randbelow(high + 1)
    base = min(base, high)
    return [dataclasses.replace(request, seed=base + i) for i in range(count)]


def batch_count(value: object) -> int:
    try:
        count = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 1
    return max(limits.BATCH.low, min(limits.BATCH.high, count))


def visitor_of(shared: Shared, request: gr.Request, browser_id: object) -> Visitor:
    return visitor_for(shared.ctx.settings.library, request, browser_id)


def tab_jobs(shared: Shared, visitor: Visitor, mode: str) -> list[Job]:
    """The person's active UI jobs in this tab (this page's owner), oldest first."""
    return [j for j in shared.ctx.desk.active(visitor.person, mode)
            if j.ticket.who.owner == visitor.owner and j.ticket.who.surface == "ui"]


# -- Run ----------------------------------------------------------------------------------------
async def submit(
    shared: Shared, tab: TabSpec, values: Mapping[Component, Any], request: gr.Request
) -> Updates:
    ctx, panel, msg = shared.ctx, tab.panel, tab.controls.message
    browser = values.get(shared.browser) if shared.browser is not None else None
    visitor = visitor_of(shared, request, browser)
    try:
        page = shared.pages.enter(visitor)
    except SessionRefused as exc:
        return {msg: message_md(exc.message, "error")}
    view = page.tab(tab.name).view
    named = fields_of(tab.fields, values)
    try:
        built = tab.build(named)
        count = batch_count(values.get(tab.advanced.batch)) if (
            tab.advanced is not None and tab.advanced.batch is not None) else 1
        jobs = ctx.desk.submit_many(batch_of(built.request, count), visitor.who)
    except (InvalidRequest, QueueFull) as exc:
        if not view.busy:
            view.status = status_html("Not started.", "error")
        return {msg: message_md(redact(exc.message, ctx.settings.comfy_url), "error"),
                panel.status: view.status}
    page.submitted.update(job.id for job in jobs)
    if tab.prompt_tools is not None:
        remember(tab.prompt_tools, visitor.person, named.get("prompt"))
    view.busy = True
    if len(tab_jobs(shared, visitor, tab.name)) == len(jobs):
        view.status = status_html("Sending…", "busy")
    for other in shared.pages.of_person(visitor.person):
        other.wake()
    warning = fit_warning(shared, tab)
    if warning:
        gr.Warning(warning)
    return {
        **built.updates,
        msg: message_md(warning, "warn") if warning else "",
        panel.info: "",              # the previous run's line would read as this one's
        panel.status: view.status,
        tab.controls.run: "Queue",
    }


# -- Stop ---------------------------------------------------------------------------------------
def stop(shared: Shared, tab: TabSpec, browser: object, request: gr.Request) -> str:
    """Stop the tab's running job (else its next waiting one), and the rest of its batch."""
    visitor = visitor_of(shared, request, browser)
    jobs = tab_jobs(shared, visitor, tab.name)
    if not jobs:
        return message_md("Nothing to stop: no job of yours is running in this tab.", "info")
    target = next((j for j in jobs if j.state is JobState.RUNNING), jobs[0])
    result = shared.ctx.desk.stop(visitor.person, target.id)
    text = result.value
    if target.ticket.batch is not None:
        rest = [j for j in jobs if j is not target and j.ticket.batch == target.ticket.batch]
        for job in rest:
            shared.ctx.desk.stop(visitor.person, job.id)
        if rest:
            text += f" The {len(rest)} waiting picture{'s' if len(rest) > 1 else ''} of this " \
                    "batch will not be made."
    return message_md(text, "info")


# -- a job ended: its results in the tab ------------------------------------------------------
async def ended(job: Job) -> tuple[Finished | None, Saved | None, Failed | None]:
    finished = saved = failed = None
    if not job.done:
        return None, None, None
    async for event in job.events():
        if isinstance(event, Finished):
            finished = event
        elif isinstance(event, Saved):
            saved = event
        elif isinstance(event, Failed):
            failed = event
    return finished, saved, failed


def shown_of(job: Job, finished: Finished | None, saved: Saved | None,
             seeded: bool) -> list[Shown]:
    """The job's pictures as the tab shows them: the library's files when it kept them."""
    items: tuple[LibraryItem, ...] = saved.items if saved is not None else ()
    out: list[Shown] = []
    images = finished.images if finished is not None else []
    for number, item in enumerate(items):
        image = images[number] if number < len(images) else None
        info = info_line(finished, image, seeded) if finished is not None and image else ""
        out.append(Shown(
            job.id, served(item.result), served(item.thumb), info,
            item.seed if item.seed is not None else 0, item.id,
            served(item.extras["mask"]) if "mask" in item.extras else None,
            served(item.inputs[0].path) if item.inputs else None,
        ))
    if not out and finished is not None:       # not kept (Saved.warning): the pictures
        for image in finished.images:
            mask = finished.extras.get("mask")
            out.append(Shown(job.id, image, image, info_line(finished, image, seeded),
                             finished.seed, None, mask))
    return out


def results_update(tab: TabSpec, state: TabState) -> Updates:
    """The tab's result area for its latest batch and the picked picture."""
    panel = tab.panel
    if not state.shown:
        return {}
    picked = state.shown[min(state.picked, len(state.shown) - 1)]
    several = state.batch is not None
    info = picked.info
    if several:
        info = f"Picture {state.picked + 1} of {len(state.shown)} · {info}"
    out: Updates = {
        panel.result: picked.result,
        panel.info: info,
        panel.grid: gr.update(
            value=[(s.thumb, f"Seed {s.seed}") for s in state.shown] if several else None,
            visible=several, selected_index=state.picked if several else None,
        ),
    }
    if tab.seeded and tab.advanced is not None:
        out[tab.advanced.seed] = picked.seed
    if panel.mask is not None:
        out[panel.mask] = picked.mask
    if panel.compare is not None:
        out[panel.compare] = (picked.before, picked.result) if picked.before else None
    return out


async def show_landed(
    shared: Shared, tab: TabSpec, token: str, browser: object, request: gr.Request
) -> Updates:
    msg = tab.controls.message
    visitor = visitor_of(shared, request, browser)
    try:
        page = shared.pages.enter(visitor)
    except SessionRefused as exc:
        return {msg: message_md(exc.message, "error")}
    job = shared.ctx.desk.find(visitor.person, (token or "").split(":", 1)[0])
    if job is None or job.ticket.who.owner != visitor.owner:
        return {msg: gr.skip()}
    finished, saved, failed = await ended(job)
    if failed is not None:
        return {msg: failure_message(shared, failed)}
    state = page.tab(tab.name)
    batch = job.ticket.batch
    if batch is None:
        state.batch, state.picked = None, 0
        state.shown = shown_of(job, finished, saved, tab.seeded)
    else:
        # Every finished picture of the batch so far: a change event runs with the newest
        # token only, so earlier landings may never have been shown one by one.
        if state.batch != batch:
            state.batch, state.picked = batch, 0
        state.shown = []
        siblings = [j for j in shared.ctx.desk.jobs(visitor.person) if j.ticket.batch == batch
                    and j.state is JobState.FINISHED]
        for sibling in sorted(siblings, key=lambda j: j.ticket.index):
            sibling_end = await ended(sibling)
            state.shown += shown_of(sibling, sibling_end[0], sibling_end[1], tab.seeded)[:1]
    if not state.shown:
        return {msg: message_md("ComfyUI finished without an image.", "error")}
    out = results_update(tab, state)
    warning = saved.warning if saved is not None else None
    out[msg] = message_md(warning, "warn") if warning else ""
    return out


def failure_message(shared: Shared, failed: Failed) -> str:
    text = redact(failed.message or "The job failed.", shared.ctx.settings.comfy_url)
    if failed.kind == "interrupted":
        return message_md(text, "info")
    if failed.kind != "invalid_input":
        log.info("job failed (%s): %s | %s", failed.kind, failed.message, failed.detail)
        gr.Warning(text)
    return message_md(text, "error")


def pick(shared: Shared, tab: TabSpec, browser: object, evt: gr.SelectData,
         request: gr.Request) -> Updates:
    """A picture picked from the batch grid becomes the tab's result (send-to and compare use
    it)."""
    visitor = visitor_of(shared, request, browser)
    try:
        page = shared.pages.enter(visitor)
    except SessionRefused as exc:
        return {tab.controls.message: message_md(exc.message, "error")}
    state = page.tab(tab.name)
    index = evt.index if isinstance(evt.index, int) else 0
    if not 0 <= index < len(state.shown):
        return {tab.controls.message: gr.skip()}
    state.picked = index
    out = results_update(tab, state)
    out.pop(tab.panel.grid, None)       # the grid already shows the pick
    return out


# -- wiring -------------------------------------------------------------------------------------
def wire_run(shared: Shared, tab: TabSpec, follower: Follower) -> None:
    """Run (submit, then follow), Stop, the landed results and the batch grid of one tab."""
    assert shared.browser is not None
    browser = shared.browser
    panel, controls = tab.panel, tab.controls
    inputs: set[Component] = {*tab.fields.values(), browser}
    if tab.advanced is not None and tab.advanced.batch is not None:
        inputs.add(tab.advanced.batch)
    outputs = [controls.message, panel.info, panel.status, controls.run, *tab.extra_outputs]

    async def on_submit(values: dict[Component, Any], request: gr.Request) -> Updates:
        return await submit(shared, tab, values, request)

    # One at a time per tab, in the order clicked (Gradio would run them side by side and its
    # threads could swap two quick clicks); each takes milliseconds.
    in_order = {**QUICK, "concurrency_limit": 1, "concurrency_id": f"submit-{tab.name}"}
    if tab.editor is not None:      # the editor's value is copied first (ui/layout.MaskEditor)
        started = tab.editor.relay(controls.run.click).then(
            on_submit, inputs=inputs, outputs=outputs, **in_order)
    else:
        started = controls.run.click(on_submit, inputs=inputs, outputs=outputs,
                                     trigger_mode="multiple", **in_order)
    started.then(follower.stream, [browser], follower.outputs, show_progress="hidden",
                 concurrency_limit=None, api_visibility="private")

    async def on_stop(browser_id: object, request: gr.Request) -> str:
        return stop(shared, tab, browser_id, request)   # on the loop: the desk lives there

    controls.stop.click(on_stop, [browser], [controls.message], **QUIET)

    landed_outputs = [controls.message, panel.result, panel.info, panel.grid]
    if tab.advanced is not None:
        landed_outputs.append(tab.advanced.seed)
    landed_outputs += [c for c in (panel.mask, panel.compare) if c is not None]

    async def on_landed(token: str, browser_id: object, request: gr.Request) -> Updates:
        return await show_landed(shared, tab, token, browser_id, request)

    panel.landed.change(on_landed, [panel.landed, browser], landed_outputs, **QUICK)

    async def on_pick(browser_id: object, evt: gr.SelectData, request: gr.Request) -> Updates:
        return pick(shared, tab, browser_id, evt, request)

    panel.grid.select(on_pick, [browser], landed_outputs, **QUIET)
    wire_upload_checks(shared.ctx.settings, tab)
    if tab.prompt_tools is not None:
        wire_prompt_tools(tab.prompt_tools, shared.ctx.settings.library, browser)


def editor_value(path: str | None, layer: Image.Image | None = None) -> dict[str, Any] | None:
    if path is None:
        return None
    return {"background": path, "layers": [layer] if layer is not None else [],
            "composite": None}


def wire_send(tabs_by_mode: Mapping[str, TabSpec], tabs: gr.Tabs, current_mode: gr.State,
              shared: Shared | None = None) -> None:
    """Each tab's "Send result to" buttons put the (picked) result in the target's first image
    slot; with `shared`, masks move to Inpaint too (ui/mask_moves.py)."""
    if shared is not None:
        wire_mask_moves(shared, tabs_by_mode, tabs, current_mode)
    for tab in tabs_by_mode.values():
        wire_send_buttons(tab.panel.send, tab.panel.result, tabs_by_mode, tabs, current_mode)


def wire_send_buttons(buttons: Mapping[str, gr.Button], source: Component,
                      tabs_by_mode: Mapping[str, TabSpec], tabs: gr.Tabs,
                      current_mode: gr.State) -> None:
    """Send buttons (target mode → button) that put `source`'s picture (a file path) in the
    target tab's first image slot and open that tab. The Chat tab uses them too."""
    for target, button in buttons.items():
        dest = tabs_by_mode.get(target)
        if dest is None or not dest.sources:  # a send target always has an image slot
            log.warning("send-to %s has no image slot; button left inert", target)
            continue
        is_editor = 0 in dest.editor_sources

        def send(path: str | None, _t: str = target, _e: bool = is_editor) -> tuple[Any, ...]:
            if not path:
                gr.Warning("Nothing to send yet: run this tab first.")
                return gr.skip(), gr.skip(), gr.skip()
            return (editor_value(path) if _e else path), gr.Tabs(selected=_t), _t

        button.click(send, inputs=[source], outputs=[dest.sources[0], tabs, current_mode],
                     **QUICK)

"""The Apps tab: every workflow app (backend/apps) in one tab, its controls drawn from its
control descriptions when it is picked.

Why one tab with a picker and not a tab per app: Gradio cannot add tabs to a built page, and
apps come and go while the studio runs (a file dropped into the folder). A fixed number of
pre-made slots would cap the apps and still need every kind of control pre-made, hidden, in
each slot. So the tab holds a dropdown of the apps, and `@gr.render` draws the chosen app's
controls (a picture upload or a mask editor, prompt boxes, sliders with the real limits,
dropdowns with the real options) and its Run button. The list is re-read on "Reload
workflows", when the tab is opened, and on a slow timer (the shelf's version, one number per
tick). Runs go through the desk like every tab's: the queue strip, the history strip (the
page's follower) and the library see them.
"""

from __future__ import annotations

import html
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import gradio as gr

from backend.apps import AppEntry, Control, ControlKind, is_app_mode
from backend.desk import Job
from backend.events import Failed, Finished, Progress, Queued, Started
from backend.requests import InvalidRequest, RequestBase
from backend.scheduler import QueueFull
from ui.follow import Follower
from ui.layout import mask_editor, upload_image
from ui.live import message_md
from ui.pages import SessionRefused
from ui.runner import QUICK, QUIET, redact, visitor_of
from ui.tabspec import Component, Shared, editor_picture, painted_mask, read_upload

log = logging.getLogger(__name__)
TICK_S = 5.0      # how often an open page asks whether the apps changed (one number)
SLIDER_MOST = 10_000   # wider ranges get a number box: a slider that wide cannot be aimed


@dataclass
class AppsTab:
    choice: gr.Dropdown
    token: gr.Textbox
    notes: gr.Markdown
    result: gr.Image
    status: gr.Markdown
    follower: Follower | None = None   # set once the page's follower exists (ui/app.py)


def app_choices(shared: Shared) -> list[tuple[str, str]]:
    apps = shared.ctx.apps
    return [(e.title, e.name) for e in apps.apps()] if apps is not None else []


def notes_md(shared: Shared) -> str:
    """Which apps cannot run, and why; or where to put one."""
    apps = shared.ctx.apps
    if apps is None:
        return "Workflow apps are off (STUDIO_APPS_DIR)."
    broken = [e for e in apps.apps() if e.problem]
    if not apps.entries:
        return (f"No apps yet: drop a ComfyUI workflow (API format) with titled nodes into "
                f"`{apps.directory.name}/` and press Reload.")
    return "\n".join(f"- **{html.escape(e.title)}** cannot run: {html.escape(e.problem or '')}"
                     for e in broken)


async def refresh(
    shared: Shared, chosen: str | None, seen: str, force: bool = False
) -> tuple[Any, ...]:
    """The dropdown, version token and notes when the apps changed since `seen` (re-reading
    the folder first with `force`: the Reload button)."""
    apps = shared.ctx.apps
    if apps is not None and force and await apps.sync(force=True):
        shared.ctx.monitor.recheck_soon()
    version = str(apps.version) if apps is not None else "0"
    if version == seen and not force:
        return gr.skip(), gr.skip(), gr.skip()
    names = app_choices(shared)
    value = chosen if chosen in {n for _, n in names} else (names[0][1] if names else None)
    return gr.update(choices=names, value=value), version, notes_md(shared)


def build(shared: Shared) -> AppsTab:
    """The Apps tab (call inside the page's `gr.Tabs`)."""
    with gr.Tab("Apps", id="apps", elem_id="tab_apps") as tab_item:
        tab = _content(shared)

    async def on_open(chosen: str | None, seen: str) -> tuple[Any, ...]:
        return await refresh(shared, chosen, seen)

    tab_item.select(on_open, [tab.choice, tab.token], [tab.choice, tab.token, tab.notes],
                    **QUICK)
    return tab


def _content(shared: Shared) -> AppsTab:
    with gr.Row():
        choice = gr.Dropdown(label="App", choices=app_choices(shared), value=None, scale=4,
                             elem_id="apps_choice")
        reload = gr.Button("Reload workflows", size="sm", scale=1, elem_id="apps_reload")
    token = gr.Textbox("", visible="hidden", elem_id="apps_token")
    notes = gr.Markdown("", elem_id="apps_notes")
    with gr.Row(equal_height=False):
        controls = gr.Column(scale=2, min_width=340)
        with gr.Column(scale=3, min_width=400):
            status = gr.Markdown("", elem_id="apps_status")
            result = gr.Image(label="Result", type="pil", format="png", interactive=False,
                              height=420, elem_id="apps_result")
            stop = gr.Button("Stop", size="sm", elem_id="apps_stop")
    tab = AppsTab(choice, token, notes, result, status)

    async def on_tick(chosen: str | None, seen: str) -> tuple[Any, ...]:
        return await refresh(shared, chosen, seen)

    async def on_reload(chosen: str | None, seen: str) -> tuple[Any, ...]:
        return await refresh(shared, chosen, seen, force=True)

    reload.click(on_reload, [choice, token], [choice, token, notes], **QUICK)
    gr.Timer(TICK_S).tick(on_tick, [choice, token], [choice, token, notes], **QUIET)

    with controls:
        @gr.render(inputs=[choice, token])
        def draw(name: str | None, version: str) -> None:
            apps = shared.ctx.apps
            entry = apps.find(name) if apps is not None and name else None
            if entry is None:
                gr.Markdown("Pick an app above.")
                return
            if entry.app is None:
                gr.Markdown(message_md(f"{entry.title} cannot run: {entry.problem}", "error"))
                return
            draw_app(shared, tab, entry)

    async def on_stop(browser_id: object, request: gr.Request) -> str:
        visitor = visitor_of(shared, request, browser_id)
        jobs = [j for j in shared.ctx.desk.active(visitor.person)
                if is_app_mode(j.ticket.mode) and j.ticket.who.owner == visitor.owner]
        if not jobs:
            return message_md("Nothing to stop: no app of yours is running.", "info")
        return message_md(shared.ctx.desk.stop(visitor.person, jobs[-1].id).value, "info")

    assert shared.browser is not None
    stop.click(on_stop, [shared.browser], [status], **QUIET)
    return tab


def draw_app(shared: Shared, tab: AppsTab, entry: AppEntry) -> None:
    """One app's controls and Run button (inside the render)."""
    fields: dict[str, Component] = {}
    painted = any(c.kind is ControlKind.MASK for c in entry.controls)
    editor = None
    gr.Markdown(f"### {entry.title}")
    for control in entry.controls:
        elem_id = f"apps_{control.name}"
        if control.kind is ControlKind.IMAGE and painted:
            editor = mask_editor(elem_id, f"{control.label} (paint the mask on it)", 360)
            fields["image"] = fields["mask"] = editor.sent
        elif control.kind is ControlKind.IMAGE:
            fields["image"] = upload_image(elem_id, control.label, 300, interactive=True)
        elif control.kind is not ControlKind.MASK:
            fields[control.name] = component_for(control, elem_id)
    run = gr.Button(f"Run {entry.title}", variant="primary", elem_id="apps_run")
    assert shared.browser is not None
    inputs = {*fields.values(), shared.browser}

    async def on_run(values: dict[Component, Any], request: gr.Request) -> AsyncIterator[
            dict[Component, Any]]:
        by_name = {name: values.get(comp) for name, comp in fields.items()}
        async for update in run_app(shared, tab, entry, by_name, values.get(shared.browser),
                                    request):
            yield update

    trigger = editor.relay(run.click).then if editor is not None else run.click
    event = trigger(on_run, inputs, [tab.result, tab.status], concurrency_limit=None,
                    show_progress="hidden", api_visibility="private")
    follower = tab.follower
    if follower is not None:   # the history strip and queue strip learn of the job
        event.then(follower.stream, [shared.browser], follower.outputs, show_progress="hidden",
                   concurrency_limit=None, api_visibility="private")


def component_for(control: Control, elem_id: str) -> Component:
    """The Gradio control for one description."""
    kind, label, default = control.kind, control.label, control.default
    if kind in (ControlKind.PROMPT, ControlKind.NEGATIVE, ControlKind.TEXT):
        lines = 3 if control.multiline and kind is not ControlKind.NEGATIVE else 1
        return gr.Textbox(str(default or ""), label=label, lines=lines, elem_id=elem_id,
                          interactive=True)
    if kind is ControlKind.SEED:
        return gr.Number(None, label="Seed (empty: random)", precision=0, minimum=control.low,
                         maximum=control.high, elem_id=elem_id, interactive=True)
    if kind is ControlKind.BOOL:
        return gr.Checkbox(bool(default), label=label, elem_id=elem_id, interactive=True)
    if kind is ControlKind.CHOICE:
        return gr.Dropdown(list(control.options), value=default, label=label, elem_id=elem_id,
                           interactive=True)
    low, high = control.low, control.high
    whole = kind in (ControlKind.INT, ControlKind.STEPS)
    start = default if isinstance(default, int | float) else (low if low is not None else 0)
    if low is not None and high is not None and high - low <= SLIDER_MOST:
        return gr.Slider(low, high, value=start, step=control.step or (1 if whole else 0.01),
                         label=label, elem_id=elem_id, interactive=True)
    return gr.Number(start, label=label, precision=0 if whole else None, minimum=low,
                     maximum=high, step=control.step or 1, elem_id=elem_id, interactive=True)


def request_of(shared: Shared, entry: AppEntry, values: Mapping[str, Any]) -> RequestBase:
    """The app's request from its controls' values, by name (InvalidRequest: nothing runs)."""
    spec = shared.ctx.registry.find(entry.name)
    if spec is None:
        raise InvalidRequest(f"{entry.title} was removed; press Reload workflows.")
    painted = any(c.kind is ControlKind.MASK for c in entry.controls)
    fields: dict[str, object] = {}
    for control in entry.controls:
        raw = values.get(control.name)
        kind = control.kind
        if kind is ControlKind.IMAGE:
            picture = editor_picture(raw) if painted else read_upload(raw)
            if picture is None:
                raise InvalidRequest("Add a picture first.", "image")
            fields["image"] = picture
        elif kind is ControlKind.MASK:
            fields["mask"] = painted_mask(raw)
        elif kind is ControlKind.PROMPT:
            fields["prompt"] = str(raw or "")
        elif kind is ControlKind.NEGATIVE:
            fields["negative_prompt"] = str(raw or "")
        elif kind is ControlKind.SEED:
            fields["seed"] = None if raw in (None, "") else int(raw)
        elif kind in (ControlKind.STEPS, ControlKind.INT):
            fields[control.name] = None if raw is None else int(raw)
        elif kind is ControlKind.FLOAT:
            fields[control.name] = None if raw is None else float(raw)
        elif kind is ControlKind.BOOL:
            fields[control.name] = bool(raw)
        else:
            fields[control.name] = None if raw is None else str(raw)
    return spec.request_from(fields)


async def run_app(
    shared: Shared, tab: AppsTab, entry: AppEntry, values: Mapping[str, Any], browser: object,
    request: gr.Request,
) -> AsyncIterator[dict[Component, Any]]:
    """Hand the job to the desk and show how it goes, then its picture."""
    ctx = shared.ctx
    visitor = visitor_of(shared, request, browser)
    try:
        page = shared.pages.enter(visitor)
        job: Job = ctx.desk.submit(request_of(shared, entry, values), visitor.who)
    except (InvalidRequest, QueueFull, SessionRefused) as exc:
        yield {tab.status: message_md(redact(exc.message, ctx.settings.comfy_url), "error")}
        return
    page.submitted.add(job.id)
    for other in shared.pages.of_person(visitor.person):
        other.wake()
    yield {tab.status: message_md("Waiting for its turn…", "info")}
    async for event in job.events():
        if isinstance(event, Queued | Started):
            yield {tab.status: message_md(f"Running {entry.title}…", "info")}
        elif isinstance(event, Progress):
            yield {tab.status: message_md(f"Running {entry.title}… {event.fraction:.0%}", "info")}
        elif isinstance(event, Finished):
            notes = " ".join(event.notes)
            yield {tab.result: event.images[0] if event.images else None,
                   tab.status: message_md(f"Done (seed {event.seed}). {notes}".strip(), "info")}
        elif isinstance(event, Failed):
            yield {tab.status: message_md(redact(event.message, ctx.settings.comfy_url),
                                          "error")}

"""The one run loop every tab uses, plus the Stop and send-to wiring.

A tab describes itself with a `TabSpec` (ui/tabspec.py: its controls by name, and how they
become the typed request); `wire_run` turns `ctx.studio.run(request)` events into UI updates:
Queued → queue position, Progress → the bar (drawn on the status strip, never on the
preview), Preview → live image, Finished → result + info + history, Failed → a message in
the tab. Closing the event iterator is what cancels the job in ComfyUI, so it happens in a
`finally` that Stop (CancelledError) and a closed browser tab (GeneratorExit) both reach.
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr
from PIL import Image

from backend.events import Failed, Finished, Preview, Progress, Queued, Started
from backend.operations.images import decode_image
from backend.redaction import scrub
from backend.requests import ImageInput, InvalidRequest
from ui import history as hist
from ui.tabspec import Built, Component, Shared, TabSpec, Values, fields_of

log = logging.getLogger(__name__)

# Jobs wait in ComfyUI's queue (where the sidebar shows them), not in Gradio's: a few per
# process in flight is cheap (each one only awaits websocket events).
RUN_CONCURRENCY = 8
RUN_CONCURRENCY_ID = "comfy"
GB = 1024**3
Updates = dict[Component, Any]


def redact(text: str, comfy_url: str) -> str:
    """The browser never learns ComfyUI's address, whatever an error message says."""
    return scrub(text, comfy_url).replace("ComfyUI at ComfyUI", "ComfyUI")


def status_html(text: str, kind: str = "idle") -> str:
    return f"<div class='status-{kind}'>{html.escape(text)}</div>"


def message_md(text: str, kind: str = "error") -> str:
    return f"<div class='msg msg-{kind}'>{html.escape(text)}</div>"


def info_line(ev: Finished, image: Image.Image, elapsed: float, seeded: bool = True) -> str:
    secs = ev.timings.get("total_s", elapsed)
    parts = [f"Seed **{ev.seed}**"] if seeded else ["Done"]
    parts += [f"{image.width}×{image.height}", f"{secs:.1f} s"]
    parts.append("models had to load (+5–10 s)" if ev.models_loaded else "models were warm")
    notes = " ".join(ev.notes)
    return " · ".join(parts) + (f"  \n{notes}" if notes else "")


def fit_warning(shared: Shared, tab: TabSpec) -> str | None:
    """A sentence when this mode's peak VRAM will not fit in what is free right now."""
    try:
        status = shared.ctx.monitor.snapshot().modes.get(tab.name)
    except Exception:  # the sidebar shows monitor trouble; a run must not fail on it
        return None
    if status is None or status.fits is not False:
        return None
    return f"{tab.mode.title} may not fit in free VRAM: {status.note}."


def _progress_desc(ev: Progress) -> str:
    label = ev.node_label or "Working"
    eta = ev.eta_s
    return f"{label} · ~{eta:.0f} s left" if eta is not None and eta > 0 else label


async def run_job(
    shared: Shared,
    tab: TabSpec,
    values: Values,
    history: list[hist.HistoryEntry] | None,
    progress: gr.Progress,
    session: str | None,
) -> AsyncIterator[Updates]:
    """The shared loop: one request, its events, the tab's updates."""
    ctx, panel, msg = shared.ctx, tab.panel, tab.controls.message
    started = time.monotonic()
    try:
        built = tab.build(values)
    except InvalidRequest as exc:
        yield {msg: message_md(exc.message, "error"), panel.status: status_html("Not started.")}
        return
    warning = fit_warning(shared, tab)
    if warning:
        gr.Warning(warning)
    yield {
        **built.updates,
        msg: message_md(warning, "warn") if warning else "",
        panel.status: status_html("Sending to ComfyUI…", "busy"),
        panel.preview: gr.update(value=None, visible=True),
        panel.result: gr.update(visible=False),
    }
    events = ctx.studio.run(built.request, surface="ui")
    job = uuid.uuid4().hex
    try:
        async for ev in events:
            if isinstance(ev, Queued):
                shared.sessions.add(session, job, ev.prompt_id, tab.name, ev.position)
                # position = prompts ahead of this one (0: next or running).
                where = f"Queued (position {ev.position + 1})"
                progress(0.0, desc=where)
                yield {panel.status: status_html(where, "busy")}
            elif isinstance(ev, Started):
                text = "Loading models (5–10 s)…" if ev.loading_models else "Running…"
                progress(0.0, desc=text)
            elif isinstance(ev, Progress):
                if ev.total:
                    progress((ev.step, ev.total), desc=_progress_desc(ev), unit="steps")
                else:
                    progress(ev.fraction, desc=_progress_desc(ev))
            elif isinstance(ev, Preview):
                yield {panel.preview: ev.image}
            elif isinstance(ev, Finished):
                async for update in _finished(shared, tab, built, ev, history, started):
                    yield update
            elif isinstance(ev, Failed):
                yield _failed(shared, tab, ev)
    except Exception as exc:  # a bug of ours: say so in the tab, keep the trace in the log
        log.exception("%s run failed inside the studio", tab.name)
        text = f"The studio hit an internal error ({type(exc).__name__}); the server log has details."
        yield _failed(shared, tab, Failed(text, "", "execution"))
    finally:
        # Stop (CancelledError) and tab close (GeneratorExit) land here: closing the
        # iterator interrupts the prompt if it runs and deletes it if it waits.
        try:
            await events.aclose()
        finally:
            shared.sessions.discard(session, job)


async def _finished(
    shared: Shared,
    tab: TabSpec,
    built: Built,
    ev: Finished,
    history: list[hist.HistoryEntry] | None,
    started: float,
) -> AsyncIterator[Updates]:
    panel = tab.panel
    if not ev.images:
        yield _failed(shared, tab, Failed("ComfyUI finished without an image.", "", "execution"))
        return
    first = ev.images[0]
    params = {**built.params, "mode": tab.name, "seed": ev.seed}
    params.update(width=first.width, height=first.height)
    seeded = tab.advanced is not None and tab.advanced.steps is not None
    info = info_line(ev, first, time.monotonic() - started, seeded)
    # PNG encoding and decoding take a while on big pictures: off the event loop, which
    # serves every open page's progress and previews.
    saved = await asyncio.to_thread(
        _save_outputs, shared.store, tab, ev, params, info, built.sources,
        shared.ctx.settings.max_input_pixels,
    )
    new_history = history
    for entry in saved.entries:
        new_history = hist.add_entry(new_history, entry)
    paths = [e.path for e in saved.entries]
    more = f" · {len(paths)} images (all in History)" if len(paths) > 1 else ""
    update: Updates = {
        panel.preview: gr.update(visible=False),
        panel.result: gr.update(value=paths[0], visible=True),
        panel.info: info + more,
        panel.status: status_html("Done.", "done"),
        tab.controls.message: "",
    }
    if shared.history is not None and shared.gallery is not None:
        update[shared.history] = new_history
        update[shared.gallery] = hist.gallery_items(new_history)
    if tab.advanced is not None:
        update[tab.advanced.seed] = ev.seed
    if panel.mask is not None:
        update[panel.mask] = ev.extras.get("mask")
    if panel.compare is not None and saved.before is not None:
        update[panel.compare] = (saved.before, first)
    yield update


@dataclass(frozen=True)
class _Saved:
    entries: tuple[hist.HistoryEntry, ...]
    before: Image.Image | None      # the first input at the result's size, for the slider


def _save_outputs(
    store: hist.ResultStore,
    tab: TabSpec,
    ev: Finished,
    params: Mapping[str, object],
    info: str,
    inputs: Sequence[ImageInput],
    max_pixels: int,
) -> _Saved:
    mode = tab.name
    decoded = []
    for item in inputs:
        try:  # the backend accepted these already; decode again only for display
            decoded.append(decode_image(item, max_pixels=max_pixels))
        except InvalidRequest as exc:
            log.info("input not kept for history: %s", exc.message)
    sources = tuple(str(store.save_plain(image, f"input-{mode}")) for image in decoded)
    extras = {k: str(store.save_plain(v, k)) for k, v in ev.extras.items()}
    entries = []
    for image in ev.images:
        path = str(store.save_result(image, params, ev.workflow))
        entries.append(hist.HistoryEntry(
            id=path, mode=mode, title=tab.mode.title, path=path, params=params, sources=sources,
            extras=extras, info=info, created=time.time(), thumb=str(store.save_thumb(image)),
        ))
    first = ev.images[0]
    before = decoded[0].convert("RGB").resize(first.size) if decoded else None
    return _Saved(tuple(entries), before)


def _failed(shared: Shared, tab: TabSpec, ev: Failed) -> Updates:
    text = redact(ev.message or "The job failed.", shared.ctx.settings.comfy_url)
    if ev.kind != "invalid_input":
        log.info("%s job failed (%s): %s | %s", tab.name, ev.kind, ev.message, ev.detail)
        if ev.kind != "interrupted":
            gr.Warning(text)
    kind = "info" if ev.kind == "interrupted" else "error"
    return {
        tab.controls.message: message_md(text, kind),
        tab.panel.status: status_html("Stopped." if ev.kind == "interrupted" else "Failed.", kind),
        tab.panel.preview: gr.update(visible=False),
        tab.panel.result: gr.update(visible=True),
    }


def wire_run(shared: Shared, tab: TabSpec) -> gr.events.Dependency:
    """Connect the run and Stop buttons of one tab to the shared loop; returns the run event.

    The inputs are a set (the field table's components and the history state): Gradio hands
    the handler one dict keyed by component, which `fields_of` turns into values by name."""
    assert shared.history is not None and shared.gallery is not None
    history_state = shared.history
    panel, controls = tab.panel, tab.controls
    outputs: list[Component] = [
        panel.status, panel.preview, panel.result, panel.info, controls.message,
        shared.history, shared.gallery,
    ]
    if tab.advanced is not None:
        outputs.append(tab.advanced.seed)
    outputs += [c for c in (panel.mask, panel.compare) if c is not None]
    outputs += tab.extra_outputs

    async def handler(
        values: dict[Component, Any], request: gr.Request, progress: gr.Progress = gr.Progress()  # noqa: B008
    ) -> AsyncIterator[Updates]:
        history = values.get(history_state)
        async for update in run_job(
            shared, tab, fields_of(tab.fields, values), history, progress, request.session_hash
        ):
            yield update

    event = controls.run.click(
        handler,
        inputs={*tab.fields.values(), history_state},
        outputs=outputs,
        show_progress="full",
        show_progress_on=[panel.status],
        concurrency_limit=RUN_CONCURRENCY,
        concurrency_id=RUN_CONCURRENCY_ID,
        api_visibility="private",
    )

    def on_stop() -> Updates:
        return {
            panel.status: status_html("Stopped.", "info"),
            controls.message: message_md("Stopped — the job was cancelled in ComfyUI.", "info"),
            panel.preview: gr.update(visible=False),
            panel.result: gr.update(visible=True),
        }

    controls.stop.click(
        on_stop,
        outputs=[panel.status, controls.message, panel.preview, panel.result],
        cancels=[event],
        queue=False,
        api_visibility="private",
    )
    return event


def editor_value(path: str | None) -> dict[str, Any] | None:
    return None if path is None else {"background": path, "layers": [], "composite": None}


def wire_send(tabs_by_mode: Mapping[str, TabSpec], tabs: gr.Tabs, current_mode: gr.State) -> None:
    """Each tab's "Send result to" buttons put the result in the target's first image slot."""
    for tab in tabs_by_mode.values():
        for target, button in tab.panel.send.items():
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

            button.click(
                send,
                inputs=[tab.panel.result],
                outputs=[dest.sources[0], tabs, current_mode],
                queue=False,
                api_visibility="private",
            )

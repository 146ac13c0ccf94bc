"""The one run loop every tab uses, plus the Stop and send-to wiring.

A tab describes itself with a `TabSpec` (its inputs and a `build(values) -> Built` that makes
the typed request); `wire_run` turns `ctx.studio.run(request)` events into UI updates:
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
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from backend.jobs import Failed, Finished, Preview, Progress, Queued, Started
from backend.monitor import scrub
from backend.operations.base import InvalidRequest
from backend.operations.images import decode_image
from ui import history as hist
from ui.controls import TAB_LABELS, Advanced, OutputPanel, RunControls
from ui.session import SessionJobs

log = logging.getLogger(__name__)

# Jobs wait in ComfyUI's queue (where the sidebar shows them), not in Gradio's: a few per
# process in flight is cheap (each one only awaits websocket events).
RUN_CONCURRENCY = 8
RUN_CONCURRENCY_ID = "comfy"
GB = 1024**3


@dataclass(frozen=True)
class Built:
    """What a tab's inputs turned into: the request, and what to remember about it."""

    request: Any
    params: dict[str, Any]
    sources: tuple[Image.Image | bytes, ...] = ()   # the inputs (compare, history restore)
    updates: dict[Any, Any] = field(default_factory=dict)  # shown as the run starts


@dataclass
class TabSpec:
    mode: str
    inputs: list[Any]
    build: Callable[[list[Any]], Built]
    controls: RunControls
    panel: OutputPanel
    advanced: Advanced | None
    fields: dict[str, Any] = field(default_factory=dict)   # param name → component (restore)
    sources: list[Any] = field(default_factory=list)       # input image slots, in order
    editor_sources: frozenset[int] = frozenset()            # slots that are ImageEditors
    extra_outputs: list[Any] = field(default_factory=list)  # what Built.updates may touch


@dataclass
class Shared:
    """Per-process objects every tab needs."""

    ctx: Any
    store: hist.ResultStore
    sessions: SessionJobs
    history: gr.State | None = None
    gallery: gr.Gallery | None = None


def read_upload(value: Any) -> bytes | Image.Image | None:
    """An UploadImage value (a file path) as bytes for the request; None when empty."""
    if value is None or isinstance(value, Image.Image | bytes):
        return value
    try:
        return Path(value).read_bytes()
    except OSError as exc:
        raise InvalidRequest("The upload is gone from the server; add the picture again.") from exc


def common_values(adv: Advanced | None, values: Sequence[Any]) -> tuple[dict[str, Any], list[Any]]:
    """Split the Advanced inputs (seed, randomize, steps?, cfg?, variant) off the front."""
    if adv is None:
        return {}, list(values)
    n = len(adv.inputs())
    head, rest = list(values[:n]), list(values[n:])
    seed, randomize, *middle, variant = head
    out: dict[str, Any] = {
        "seed": None if randomize or seed is None else int(seed),
        "variant": None if variant in (None, "", "default") else str(variant),
    }
    if adv.steps is not None:
        out["steps"] = int(middle[0])
        out["cfg"] = round(float(middle[1]), 2)
    return out, rest


def redact(text: str, ctx: Any) -> str:
    """The browser never learns ComfyUI's address, whatever an error message says."""
    text = scrub(text, getattr(getattr(ctx, "settings", None), "comfy_url", "") or "")
    return text.replace("ComfyUI at ComfyUI", "ComfyUI")


def status_html(text: str, kind: str = "idle") -> str:
    return f"<div class='status-{kind}'>{html.escape(text)}</div>"


def message_md(text: str, kind: str = "error") -> str:
    return f"<div class='msg msg-{kind}'>{html.escape(text)}</div>"


def _seconds(timings: Any, fallback: float) -> float:
    if isinstance(timings, dict):
        for key in ("total", "total_s", "wall", "elapsed"):
            if isinstance(timings.get(key), int | float):
                return float(timings[key])
    return fallback


def info_line(ev: Finished, image: Image.Image, elapsed: float, seeded: bool = True) -> str:
    secs = _seconds(getattr(ev, "timings", None), elapsed)
    parts = [f"Seed **{ev.seed}**"] if seeded else ["Done"]
    parts += [f"{image.width}×{image.height}", f"{secs:.1f} s"]
    parts.append("models had to load (+5–10 s)" if ev.models_loaded else "models were warm")
    notes = " ".join(getattr(ev, "info", ()) or ())
    return " · ".join(parts) + (f"  \n{notes}" if notes else "")


def fit_warning(ctx: Any, mode: str) -> str | None:
    """A sentence when this mode's peak VRAM will not fit in what is free right now."""
    try:
        status = ctx.monitor.snapshot().modes.get(mode)
    except Exception:  # the sidebar shows monitor trouble; a run must not fail on it
        return None
    if status is None or status.fits is not False:
        return None
    return f"{TAB_LABELS.get(mode, mode)} may not fit in free VRAM: {status.note}."


def _progress_desc(ev: Progress) -> str:
    label = getattr(ev, "node_label", "") or "Working"
    eta = getattr(ev, "eta_s", None)
    return f"{label} · ~{eta:.0f} s left" if isinstance(eta, int | float) and eta > 0 else label


async def run_job(
    shared: Shared,
    spec: TabSpec,
    values: Sequence[Any],
    history: list[hist.HistoryEntry] | None,
    progress: gr.Progress,
    session: str | None,
) -> AsyncIterator[dict[Any, Any]]:
    """The shared loop: one request, its events, the tab's updates."""
    ctx, panel, msg = shared.ctx, spec.panel, spec.controls.message
    started = time.monotonic()
    try:
        built = spec.build(list(values))
    except InvalidRequest as exc:
        yield {msg: message_md(exc.message, "error"), panel.status: status_html("Not started.")}
        return
    warning = fit_warning(ctx, spec.mode)
    if warning:
        gr.Warning(warning)
    yield {
        **built.updates,
        msg: message_md(warning, "warn") if warning else "",
        panel.status: status_html("Sending to ComfyUI…", "busy"),
        panel.preview: gr.update(value=None, visible=True),
        panel.result: gr.update(visible=False),
    }
    events = ctx.studio.run(built.request)
    job = uuid.uuid4().hex
    try:
        async for ev in events:
            if isinstance(ev, Queued):
                shared.sessions.add(session, job, ev.prompt_id, spec.mode, ev.position)
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
                async for update in _finished(shared, spec, built, ev, history, started):
                    yield update
            elif isinstance(ev, Failed):
                yield _failed(ctx, spec, ev)
    except Exception as exc:  # a bug of ours: say so in the tab, keep the trace in the log
        log.exception("%s run failed inside the studio", spec.mode)
        text = f"The studio hit an internal error ({type(exc).__name__}); the server log has details."
        yield _failed(ctx, spec, Failed(text, "", "execution"))
    finally:
        # Stop (CancelledError) and tab close (GeneratorExit) land here: closing the
        # iterator interrupts the prompt if it runs and deletes it if it waits.
        try:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            shared.sessions.discard(session, job)


async def _finished(
    shared: Shared,
    spec: TabSpec,
    built: Built,
    ev: Finished,
    history: list[hist.HistoryEntry] | None,
    started: float,
) -> AsyncIterator[dict[Any, Any]]:
    panel = spec.panel
    if not ev.images:
        yield _failed(shared.ctx, spec, Failed("ComfyUI finished without an image.", "", "execution"))
        return
    first = ev.images[0]
    params = {**built.params, "mode": spec.mode, "seed": ev.seed}
    params.update(width=first.width, height=first.height)
    seeded = spec.advanced is not None and spec.advanced.steps is not None
    info = info_line(ev, first, time.monotonic() - started, seeded)
    max_pixels = getattr(shared.ctx.settings, "max_input_pixels", 40_000_000)
    # PNG encoding and decoding take a while on big pictures: off the event loop, which
    # serves every open page's progress and previews.
    saved = await asyncio.to_thread(
        _save_outputs, shared.store, spec.mode, ev, params, info, built.sources, max_pixels
    )
    new_history = history
    for entry in saved.entries:
        new_history = hist.add_entry(new_history, entry)
    paths = [e.path for e in saved.entries]
    more = f" · {len(paths)} images (all in History)" if len(paths) > 1 else ""
    update: dict[Any, Any] = {
        panel.preview: gr.update(visible=False),
        panel.result: gr.update(value=paths[0], visible=True),
        panel.info: info + more,
        panel.status: status_html("Done.", "done"),
        spec.controls.message: "",
    }
    if shared.history is not None and shared.gallery is not None:
        update[shared.history] = new_history
        update[shared.gallery] = hist.gallery_items(new_history)
    if spec.advanced is not None:
        update[spec.advanced.seed] = ev.seed
    if panel.mask is not None:
        update[panel.mask] = (ev.extras or {}).get("mask")
    if panel.compare is not None and saved.before is not None:
        update[panel.compare] = (saved.before, first)
    yield update


@dataclass(frozen=True)
class _Saved:
    entries: tuple[hist.HistoryEntry, ...]
    before: Image.Image | None      # the first input at the result's size, for the slider


def _save_outputs(
    store: hist.ResultStore,
    mode: str,
    ev: Finished,
    params: dict[str, Any],
    info: str,
    inputs: Sequence[Image.Image | bytes],
    max_pixels: int,
) -> _Saved:
    decoded = []
    for item in inputs:
        try:  # the backend accepted these already; decode again only for display
            decoded.append(decode_image(item, max_pixels=max_pixels))
        except InvalidRequest as exc:
            log.info("input not kept for history: %s", exc.message)
    sources = tuple(str(store.save_plain(image, f"input-{mode}")) for image in decoded)
    extras = {k: str(store.save_plain(v, k)) for k, v in (ev.extras or {}).items()}
    entries = []
    for image in ev.images:
        path = str(store.save_result(image, params, ev.workflow))
        entries.append(hist.HistoryEntry(
            id=path, mode=mode, path=path, params=params, sources=sources, extras=extras,
            info=info, created=time.time(), thumb=str(store.save_thumb(image)),
        ))
    first = ev.images[0]
    before = decoded[0].convert("RGB").resize(first.size) if decoded else None
    return _Saved(tuple(entries), before)


def _failed(ctx: Any, spec: TabSpec, ev: Failed) -> dict[Any, Any]:
    text = redact(ev.message or "The job failed.", ctx)
    if ev.kind != "invalid_input":
        log.info("%s job failed (%s): %s | %s", spec.mode, ev.kind, ev.message, ev.detail)
        if ev.kind != "interrupted":
            gr.Warning(text)
    kind = "info" if ev.kind == "interrupted" else "error"
    return {
        spec.controls.message: message_md(text, kind),
        spec.panel.status: status_html("Stopped." if ev.kind == "interrupted" else "Failed.", kind),
        spec.panel.preview: gr.update(visible=False),
        spec.panel.result: gr.update(visible=True),
    }


def wire_run(shared: Shared, spec: TabSpec) -> Any:
    """Connect the run and Stop buttons of one tab to the shared loop; returns the run event."""
    assert shared.history is not None and shared.gallery is not None
    panel, controls = spec.panel, spec.controls
    outputs = [
        panel.status, panel.preview, panel.result, panel.info, controls.message,
        shared.history, shared.gallery,
    ]
    if spec.advanced is not None:
        outputs.append(spec.advanced.seed)
    outputs += [c for c in (panel.mask, panel.compare) if c is not None]
    outputs += spec.extra_outputs

    async def handler(request: gr.Request, progress=gr.Progress(), *args: Any):  # noqa: B008
        *values, history = args
        session = getattr(request, "session_hash", None)
        async for update in run_job(shared, spec, values, history, progress, session):
            yield update

    event = controls.run.click(
        handler,
        inputs=[*spec.inputs, shared.history],
        outputs=outputs,
        show_progress="full",
        show_progress_on=[panel.status],
        concurrency_limit=RUN_CONCURRENCY,
        concurrency_id=RUN_CONCURRENCY_ID,
        api_visibility="private",
    )

    def on_stop() -> dict[Any, Any]:
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


def wire_send(specs: dict[str, TabSpec], tabs: gr.Tabs, current_mode: gr.State) -> None:
    """Each tab's "Send result to" buttons put the result in the target's first image slot."""
    for spec in specs.values():
        for target, button in spec.panel.send.items():
            dest = specs.get(target)
            if dest is None or not dest.sources:  # every target tab has an image slot today
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
                inputs=[spec.panel.result],
                outputs=[dest.sources[0], tabs, current_mode],
                queue=False,
                api_visibility="private",
            )

"""What a page shows while jobs run, as HTML strings (pure: unit-testable without a server).

`Track` is what a follower knows about one job; `status_html` draws a tab's progress line and
bar from its jobs' tracks, `preview_html` the live preview (an inline data-URL picture: nothing
is written to disk), `strip_html` the person's queue strip, `phone_line` the one-line status
narrow screens show instead of the sidebar.
"""

from __future__ import annotations

import base64
import html
import io
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from backend.desk import DeskEvent, JobState, JobView, Saved
from backend.events import Failed, Finished, Preview, Progress, Queued, Started
from backend.modes import ModeRegistry
from backend.monitor import MonitorSnapshot

PREVIEW_SIDE = 512
PREVIEW_QUALITY = 80
NO_PREVIEW_AFTER_STEPS = 2      # a sampler this far in without a picture: ComfyUI sends none
PREVIEW_HINT = ("ComfyUI sends no previews — start it with <code>--preview-method auto</code> "
                "to watch the picture form.")


def status_html(text: str, kind: str = "idle") -> str:
    return f"<div class='status-{kind}'>{html.escape(text)}</div>"


def message_md(text: str, kind: str = "error") -> str:
    return f"<div class='msg msg-{kind}'>{html.escape(text)}</div>"


IDLE_STATUS = status_html("Ready.")


@dataclass
class Track:
    """One job as a follower has seen it so far."""

    job_id: str
    mode: str
    index: int = 0                  # its place in its batch
    count: int = 1                  # the batch's size
    phase: str = "waiting"          # waiting | queued | loading | running | ended
    position: int | None = None     # jobs ahead (studio's line, or ComfyUI's queue when queued)
    progress: Progress | None = None
    preview: Image.Image | None = None      # the newest preview picture
    previewed: bool = False
    outcome: str = ""               # finished | failed | stopped (once ended)
    failed: Failed | None = None
    finished: Finished | None = None
    saved: Saved | None = None

    @property
    def active(self) -> bool:
        return self.phase != "ended"

    @property
    def no_previews(self) -> bool:
        """Sampling for a while and not a single preview: ComfyUI sends none."""
        step = self.progress.step if self.progress is not None else None
        return not self.previewed and step is not None and step >= NO_PREVIEW_AFTER_STEPS

    def apply(self, event: DeskEvent) -> bool:
        """Take one event; True when the job has ended with it (Saved, or Failed)."""
        if isinstance(event, Queued):
            self.phase = "queued" if event.prompt_id else "waiting"
            self.position = event.position
        elif isinstance(event, Started):
            self.phase = "loading" if event.loading_models else "running"
            self.position = None
        elif isinstance(event, Progress):
            self.phase, self.progress = "running", event
        elif isinstance(event, Preview):
            self.phase, self.previewed = "running", True
            self.preview = event.image      # encoded only when drawn (a follower skips some)
        elif isinstance(event, Finished):
            self.finished = event
        elif isinstance(event, Saved):
            self.saved = event
            self.phase, self.outcome = "ended", "finished"
            return True
        elif isinstance(event, Failed):
            self.failed = event
            self.phase = "ended"
            self.outcome = "stopped" if event.kind == "interrupted" else "failed"
            return True
        return False


# -- the live preview -----------------------------------------------------------------------
_urls: OrderedDict[int, tuple[Image.Image, str]] = OrderedDict()


def data_url(image: Image.Image) -> str:
    """A small JPEG of the preview, inline. Cached per picture: every page following the same
    job gets the same Preview event."""
    cached = _urls.get(id(image))
    if cached is not None and cached[0] is image:
        return cached[1]
    small = image.convert("RGB")
    if max(small.size) > PREVIEW_SIDE:
        small.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=PREVIEW_QUALITY)
    url = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    _urls[id(image)] = (image, url)
    while len(_urls) > 16:
        _urls.popitem(last=False)
    return url


def preview_html(track: Track | None, hint: bool) -> str:
    """The preview area for a tab's current job: the picture forming, or (when ComfyUI sends
    none) the step count, with the hint on how to turn previews on when `hint`."""
    if track is None or not track.active:
        return ""
    if track.preview is not None:
        url = data_url(track.preview)
        return f"<div class='live'><img src='{url}' alt='Live preview'></div>"
    if track.no_previews and track.progress is not None:
        step = f"Step {track.progress.step} / {track.progress.total}"
        tip = f"<div class='live-hint'>{PREVIEW_HINT}</div>" if hint else ""
        return f"<div class='live no-preview'><div class='live-step'>{step}</div>{tip}</div>"
    return ""


# -- the tab's progress line ----------------------------------------------------------------
def current(tracks: Sequence[Track]) -> Track | None:
    """The job a tab's progress line is about: the running one, else the first waiting."""
    active = [t for t in tracks if t.active]
    running = [t for t in active if t.phase in ("queued", "loading", "running")]
    return (running or active or [None])[0]


def status_html_for(tracks: Sequence[Track]) -> str | None:
    """The progress line for a tab's jobs; None when none is active (the tab keeps its end
    state)."""
    now = current(tracks)
    if now is None:
        return None
    more = sum(1 for t in tracks if t.active) - 1
    prefix = f"Image {now.index + 1} of {now.count} · " if now.count > 1 else ""
    suffix = f" · {more} more queued" if more > 0 else ""
    fraction = 0.0
    if now.phase == "waiting":
        ahead = now.position or 0
        text = (f"Waiting for its turn: {ahead} job{'s' if ahead != 1 else ''} ahead in the "
                "studio's line" if ahead else "Next in line…")
    elif now.phase == "queued":
        text = f"Queued in ComfyUI (position {(now.position or 0) + 1})"
    elif now.phase == "loading":
        text = "Loading models (5–10 s)…"
    elif now.progress is not None:
        p = now.progress
        fraction = p.fraction
        parts = [p.node_label or "Working"]
        if p.total:
            parts.append(f"step {p.step}/{p.total}")
        if p.eta_s is not None and p.eta_s > 0:
            parts.append(f"~{p.eta_s:.0f} s left")
        text = " · ".join(parts)
    else:
        text = "Running…"
    width = max(0.0, min(100.0, 100.0 * fraction))
    return (
        "<div class='status-busy run-state'>"
        f"<div class='run-line'>{html.escape(prefix + text + suffix)}</div>"
        f"<div class='run-bar'><div class='run-fill' style='width:{width:.1f}%'></div></div>"
        "</div>"
    )


def ended_status(track: Track) -> str:
    if track.outcome == "finished":
        return status_html("Done.", "done")
    if track.outcome == "stopped":
        return status_html("Stopped.", "info")
    return status_html("Failed.", "error")


# -- the queue strip ------------------------------------------------------------------------
def strip_html(views: Sequence[JobView], registry: ModeRegistry, several_servers: bool) -> str:
    """The person's waiting and running jobs, each with a cancel button (ui/runner.py wires
    the clicks); "" when there are none."""
    active = [v for v in views if v.state.active]
    if not active:
        return ""
    items = []
    for view in active:
        spec = registry.find(view.ticket.mode)
        title = spec.title if spec is not None else view.ticket.mode
        label = f" “{html.escape(view.ticket.label)}”" if view.ticket.label else ""
        if view.state is JobState.RUNNING:
            where = f"running {view.fraction:.0%}" if view.fraction else "running"
            kind = "running"
        else:
            ahead = view.position or 0
            where = f"#{ahead + 1} in the studio's line"
            kind = "waiting"
        if several_servers and view.server:
            where += f" on {html.escape(view.server)}"
        items.append(
            f"<span class='qs-job {kind}'><b>{html.escape(title)}</b>{label} · {where}"
            f"<button class='qs-cancel' data-job='{html.escape(view.ticket.id, quote=True)}' "
            f"title='Cancel this job' aria-label='Cancel this job'>✕</button></span>"
        )
    return f"<div class='queue-strip'><span class='qs-title'>Your jobs</span>{''.join(items)}</div>"


# -- the narrow screen's status line --------------------------------------------------------
def phone_line(snap: MonitorSnapshot, mine: int) -> str:
    if snap.online:
        parts = ["<span class='dot on'></span>Online"]
        if snap.vram_total and snap.vram_free is not None:
            used = 100.0 * (snap.vram_total - snap.vram_free) / snap.vram_total
            parts.append(f"VRAM {used:.0f}%")
        queue = len(snap.queue_running) + len(snap.queue_pending) + snap.studio_waiting
        parts.append(f"queue {queue}")
        if mine:
            parts.append(f"yours {mine}")
    else:
        parts = ["<span class='dot off'></span>ComfyUI offline"]
    return ("<button class='phone-status' type='button' aria-label='Open the status panel'>"
            f"{' · '.join(parts)}<span class='open'>Status ›</span></button>")


# -- the info line under a result -----------------------------------------------------------
def info_line(ev: Finished, image: Image.Image, seeded: bool = True) -> str:
    secs = ev.timings.get("total_s", 0.0)
    parts = [f"Seed **{ev.seed}**"] if seeded else ["Done"]
    parts += [f"{image.width}×{image.height}", f"{secs:.1f} s"]
    parts.append("models had to load (+5–10 s)" if ev.models_loaded else "models were warm")
    notes = " ".join(ev.notes)
    return " · ".join(parts) + (f"  \n{notes}" if notes else "")

"""The sidebar: ComfyUI status, VRAM/RAM, whether previews are on, the queue (and where the
person's jobs are), loaded models, per-mode readiness and fit, Free VRAM and Warm up.

With several ComfyUI servers: one compact row per server (label, online, a VRAM bar, its
queue, the model it has warm, how many modes are ready there), which server runs each of the
person's jobs, and a server choice for Free VRAM and Warm up (one server or all).

The 2 s timer only reads `ctx.monitor.snapshot()` (the one shared poller's latest answer) and
the desk's in-memory list of the person's jobs, off the queue, so a hundred open pages cost
ComfyUI nothing extra and never wait behind jobs. The same tick refreshes the queue strip and
the one-line status narrow screens show instead of the sidebar.
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import gradio as gr

from backend.context import StudioContext
from backend.desk import JobState, JobView
from backend.modes import ModeRegistry
from backend.monitor import MonitorSnapshot
from backend.operations.families import GGUF
from backend.operations.variant import (
    FITS,
    FITS_AFTER_UNLOADING,
    DeviceMemory,
    expected_peaks,
    verdict,
)
from backend.redaction import scrub
from backend.settings import Settings
from backend.warmup import WarmupResult, warm_up
from ui.follow import Follower
from ui.identity import visitor_for
from ui.live import phone_line
from ui.runner import redact

# Warm-up jobs wait for ComfyUI like runs do; a few at once per process.
WARM_CONCURRENCY = 2
ALL_SERVERS = "All servers"

log = logging.getLogger(__name__)

TICK_S = 2.0
GB = 1024**3


def _gb(n: int | None) -> str:
    return "?" if n is None else f"{n / GB:.1f}"


def _bar(label: str, used: int | None, total: int | None, elem: str) -> str:
    if not total or used is None:
        return (
            f"<div class='meter' id='{elem}'><div class='meter-label'><span>{label}</span>"
            "<span>unknown</span></div><div class='meter-track'></div></div>"
        )
    pct = max(0.0, min(100.0, 100.0 * used / total))
    level = "high" if pct >= 90 else "mid" if pct >= 70 else "low"
    return (
        f"<div class='meter' id='{elem}'><div class='meter-label'><span>{label}</span>"
        f"<span class='meter-value'>{_gb(used)} / {_gb(total)} GB</span></div>"
        f"<div class='meter-track'><div class='meter-fill {level}' style='width:{pct:.1f}%'>"
        "</div></div></div>"
    )


def _title(registry: ModeRegistry, mode: str) -> str:
    spec = registry.find(mode)
    return spec.title if spec is not None else mode


def _queue_html(
    snap: MonitorSnapshot, mine: Sequence[JobView], registry: ModeRegistry, several: bool = False
) -> str:
    running, pending = tuple(snap.queue_running), tuple(snap.queue_pending)
    head = f"<b>{len(running)}</b> running · <b>{len(pending)}</b> waiting"
    held = snap.studio_waiting
    if held:
        # Jobs the studio holds back so ComfyUI gets one at a time (grouped by model).
        head += f" · <b>{held}</b> in the studio's line"
    rows = []
    for job in mine:
        if not job.state.active:
            continue
        label = _title(registry, job.ticket.mode)
        if job.state is JobState.RUNNING:
            where = "running now"
        else:
            where = f"#{(job.position or 0) + 1} in the studio's line"
        if several and job.server:
            where += f" on <b class='job-server'>{html.escape(job.server)}</b>"
        rows.append(f"<li><span>{html.escape(label)}</span><span>{where}</span></li>")
    mine_html = f"<ul class='mine'>{''.join(rows)}</ul>" if rows else ""
    return f"<div class='queue'><div>{head}</div>{mine_html}</div>"


def _mode_rows(snap: MonitorSnapshot, registry: ModeRegistry) -> str:
    rows = []
    for spec in registry:
        label = spec.title
        st = snap.modes.get(spec.name) if snap.modes else None
        if st is None:
            continue
        if st.ready is None:
            ready = "<span class='badge unknown'>not checked</span>"
        elif st.ready:
            ready = "<span class='badge ok'>ready</span>"
        else:
            ready = "<span class='badge bad'>missing</span>"
        if st.fits is None:
            fit = f"<span class='fit unknown'>{st.peak_vram_gb:.0f} GB</span>"
        elif st.fits:
            fit = f"<span class='fit ok'>{st.peak_vram_gb:.0f} GB ✓</span>"
        else:
            fit = f"<span class='fit bad'>{st.peak_vram_gb:.0f} GB !</span>"
        title = html.escape(st.note + (f" — {st.missing}" if st.missing else ""), quote=True)
        rows.append(
            f"<div class='mode-row' title=\"{title}\"><span class='mode-name'>"
            f"{html.escape(label)}</span>{ready}{fit}</div>"
        )
    missing = [
        f"<li><b>{html.escape(_title(registry, m))}</b>: {html.escape(st.missing)}</li>"
        for m, st in (snap.modes or {}).items()
        if st.ready is False and st.missing
    ]
    tight = [
        f"<li><b>{html.escape(_title(registry, m))}</b>: {html.escape(st.note)}</li>"
        for m, st in (snap.modes or {}).items()
        if st.fits is False
    ]
    detail = f"<ul class='missing'>{''.join(missing)}</ul>" if missing else ""
    if tight:
        detail += f"<div class='side-warn'>Will not fit in free VRAM now:<ul>{''.join(tight)}</ul></div>"
    head = (
        "<div class='mode-row mode-head'><span>Mode</span><span>Nodes &amp; models</span>"
        "<span>Peak VRAM</span></div>"
    )
    return f"<div class='modes'>{head}{''.join(rows)}</div>{detail}"


# -- GPU planning (issue 16): per mode and variant, expected peak against this device ------
VERDICT_CLASS = {FITS: "ok", FITS_AFTER_UNLOADING: "unknown"}


def planning_html(snap: MonitorSnapshot, registry: ModeRegistry, settings: Settings) -> str:
    """A collapsed table: per mode and variant (fp8, GGUF Q4) the expected peak and whether
    it fits in free memory now, fits after ComfyUI unloads what it holds, or will not fit;
    above it the device's split (free, ComfyUI's, the other tenants': total − free −
    ComfyUI's), as in the guide's "sample sizing on a shared GPU"."""
    if snap.vram_free is None:
        return ""
    memory = DeviceMemory.from_bytes(snap.vram_total, snap.vram_free, snap.comfy_vram_held,
                                     cpu=snap.memory == "RAM")
    split = f"free {memory.free_gb:.1f} GB · ComfyUI {memory.held_gb:.1f} GB"
    if memory.others_gb is not None and memory.total_gb is not None:
        split += f" · others {memory.others_gb:.1f} GB of {memory.total_gb:.0f} GB"
    rows = []
    for spec in registry:
        status = snap.modes.get(spec.name) if snap.modes else None
        peaks = expected_peaks(spec.name, spec.peak_vram(settings), settings,
                               spec.family.gguf is not None)
        cells = []
        for variant in ("fp8", GGUF):
            peak = peaks.get(variant)
            if peak is None:
                cells.append("<td class='hint'>—</td>")
                continue
            said = verdict(peak, memory)
            kind = VERDICT_CLASS.get(said, "bad")
            if variant == GGUF and status is not None and status.gguf_ready is False:
                said += " (not installed)"
            cells.append(f"<td class='fit {kind}' title='{html.escape(said, quote=True)}'>"
                         f"{peak:.0f} GB · {html.escape(said)}</td>")
        rows.append(f"<tr><td>{html.escape(spec.title)}</td>{''.join(cells)}</tr>")
    return (
        "<details class='planning' id='gpu_planning'><summary>GPU planning "
        f"<span class='hint small'>(STUDIO_VARIANT={html.escape(settings.variant)})</span>"
        f"</summary><div class='hint small'>{snap.memory}: {split}</div>"
        "<table class='planning-table small'><tr><th>Mode</th><th>fp8</th><th>GGUF Q4</th>"
        f"</tr>{''.join(rows)}</table></details>"
    )


def _previews_html(previews: bool | None) -> str:
    if previews is None:
        return ""
    if previews:
        return "<div class='hint' id='previews_state'>Live previews: on</div>"
    return ("<div class='side-warn' id='previews_state'>Live previews: off. Start ComfyUI with "
            "<code>--preview-method auto</code> to watch pictures form.</div>")


def _server_rows(
    servers: Mapping[str, MonitorSnapshot], registry: ModeRegistry, mine: Sequence[JobView],
    comfy_url: str,
) -> str:
    """One compact row per server: label and state, a VRAM bar, its queue (and the person's
    jobs there), the model it has warm, how many modes are ready there."""
    rows = []
    total = len(list(registry))
    for label, snap in servers.items():
        name = html.escape(label)
        ours = sum(1 for job in mine if job.state is JobState.RUNNING and job.server == label)
        if snap.online:
            queue = len(snap.queue_running) + len(snap.queue_pending)
            state = f"online · queue {queue}" + (f" · yours {ours}" if ours else "")
            conn = "online"
        else:
            state = "offline"
            conn = "offline"
        used = (None if snap.vram_total is None or snap.vram_free is None
                else snap.vram_total - snap.vram_free)
        if snap.vram_total and used is not None:
            pct = max(0.0, min(100.0, 100.0 * used / snap.vram_total))
            level = "high" if pct >= 90 else "mid" if pct >= 70 else "low"
            bar = (f"<div class='meter-track' title='{snap.memory} {_gb(used)} / "
                   f"{_gb(snap.vram_total)} GB'><div class='meter-fill {level}' "
                   f"style='width:{pct:.1f}%'></div></div>")
            memory = f"{snap.memory} {_gb(used)} / {_gb(snap.vram_total)} GB"
        else:
            bar, memory = "<div class='meter-track'></div>", f"{snap.memory} unknown"
        warm = html.escape(snap.loaded_file or snap.loaded_family or "nothing")
        ready = [m for m, st in snap.modes.items() if st.ready is True]
        unready = [_title(registry, m) for m, st in snap.modes.items() if st.ready is False]
        if not snap.online or all(st.ready is None for st in snap.modes.values()):
            badge = "<span class='badge unknown'>not checked</span>"
        else:
            kind = "ok" if not unready else "bad"
            why = html.escape("missing here: " + ", ".join(unready), quote=True) if unready else ""
            badge = (f"<span class='badge {kind}' title=\"{why}\">{len(ready)}/{total} "
                     "modes</span>")
        error = ""
        if not snap.online and snap.error:
            error = f"<div class='hint small'>{html.escape(scrub(snap.error, comfy_url))}</div>"
        rows.append(
            f"<div class='server-row' id='server-{name}' data-server='{name}' "
            "style='margin:6px 0 8px'>"
            f"<div class='conn {conn}'><span class='dot'></span><b>{name}</b>"
            f"<span class='hint server-state'>{state}</span></div>"
            f"{bar}<div class='hint small'>{memory} · warm: {warm} · {badge}</div>{error}</div>"
        )
    return "".join(rows)


def render(
    snap: MonitorSnapshot,
    registry: ModeRegistry,
    mine: Sequence[JobView] = (),
    comfy_url: str = "",
    previews: bool | None = None,
    servers: Mapping[str, MonitorSnapshot] | None = None,
    planning: str = "",
) -> str:
    """The sidebar's HTML for one snapshot (pure: unit-testable without a server); `servers`
    (each server's snapshot by label) adds a row per server when there are several;
    `planning` is planning_html's section (after the modes)."""
    if servers is not None and len(servers) > 1:
        return _render_several(snap, registry, mine, comfy_url, previews, servers, planning)
    if snap.online:
        version = f" · v{html.escape(snap.comfyui_version)}" if snap.comfyui_version else ""
        ws = "" if snap.websocket_connected else " <span class='hint'>(live updates reconnecting)</span>"
        head = f"<div class='conn online' id='comfy_state'><span class='dot'></span>ComfyUI online{version}{ws}</div>"
    else:
        reason = scrub(snap.error or "", comfy_url)
        head = (
            "<div class='conn offline' id='comfy_state'><span class='dot'></span>"
            "ComfyUI offline — not reachable</div>"
            f"<div class='hint'>{html.escape(reason)}</div>"
        )
    device = f"<div class='hint'>{html.escape(snap.device_name)}</div>" if snap.device_name else ""
    vram_used = None if snap.vram_total is None or snap.vram_free is None else snap.vram_total - snap.vram_free
    ram_used = None if snap.ram_total is None or snap.ram_free is None else snap.ram_total - snap.ram_free
    if snap.last_mode:
        model = html.escape(snap.loaded_file or snap.loaded_family or "a model")
        lo, hi = snap.swap_cost_s
        loaded = (
            f"<div class='loaded'>Last run: <b>{html.escape(_title(registry, snap.last_mode))}</b>"
            f" — the {model} is likely in memory. Switching to another model costs "
            f"~{lo:.0f}–{hi:.0f} s.</div>"
        )
    else:
        loaded = "<div class='loaded hint'>No run yet: the first run loads its models (5–10 s).</div>"
    checked = ""
    if snap.checked_at:
        checked = f"<div class='hint small'>checked {time.strftime('%H:%M:%S', time.localtime(snap.checked_at))}</div>"
    return (
        "<div class='side-panel'>"
        f"{head}{device}{_previews_html(previews if snap.online else None)}"
        f"{_bar('VRAM', vram_used, snap.vram_total, 'vram_meter')}"
        f"{_bar('RAM', ram_used, snap.ram_total, 'ram_meter')}"
        "<div class='side-title'>Queue</div>"
        f"{_queue_html(snap, mine, registry)}"
        "<div class='side-title'>Models</div>"
        f"{loaded}{_mode_rows(snap, registry)}{planning}{checked}"
        "</div>"
    )


def _render_several(
    snap: MonitorSnapshot,
    registry: ModeRegistry,
    mine: Sequence[JobView],
    comfy_url: str,
    previews: bool | None,
    servers: Mapping[str, MonitorSnapshot],
    planning: str = "",
) -> str:
    online = sum(1 for one in servers.values() if one.online)
    state = "online" if online else "offline"
    head = (f"<div class='conn {state}' id='comfy_state'><span class='dot'></span>ComfyUI: "
            f"{online} of {len(servers)} servers online</div>")
    checked = ""
    if snap.checked_at:
        checked = f"<div class='hint small'>checked {time.strftime('%H:%M:%S', time.localtime(snap.checked_at))}</div>"
    return (
        "<div class='side-panel'>"
        f"{head}{_previews_html(previews if snap.online else None)}"
        "<div class='side-title'>Servers</div>"
        f"<div class='servers'>{_server_rows(servers, registry, mine, comfy_url)}</div>"
        "<div class='side-title'>Queue</div>"
        f"{_queue_html(snap, mine, registry, several=True)}"
        "<div class='side-title'>Models</div>"
        f"{_mode_rows(snap, registry)}{planning}{checked}"
        "</div>"
    )


@dataclass
class SidebarHandle:
    status: gr.HTML


def build_sidebar(demo: gr.Blocks, ctx: StudioContext, current_mode: gr.State) -> SidebarHandle:
    """Call inside the Blocks (the panel, Free VRAM and Warm up); `wire_tick` later, once the
    queue strip and the phone line exist."""
    comfy_url = ctx.settings.comfy_url

    with gr.Sidebar(label="Status", open=True, width=330, position="left", elem_id="sidebar"):
        gr.HTML("<div class='side-brand'>Server status</div>", padding=False)
        status = gr.HTML("<div class='hint'>Checking ComfyUI…</div>", elem_id="side_status", padding=False)
        labels = list(ctx.monitor.servers())
        # Several servers: Free VRAM and Warm up act on the one chosen, or on all.
        target = gr.Dropdown(
            [ALL_SERVERS, *labels], value=ALL_SERVERS, label="Server", elem_id="server_choice",
            visible=len(labels) > 1, interactive=True, container=False,
        )
        with gr.Row():
            free = gr.Button("Free VRAM", size="sm", elem_id="free_vram")
            warm = gr.Button("Warm up this tab", size="sm", elem_id="warm_up")
        warm_all = gr.Button(
            "Warm up every mode", size="sm", elem_id="warm_up_all", variant="secondary"
        )
        action = gr.Markdown("", elem_id="side_action", elem_classes=["side-action"])

    def panel(request: gr.Request, browser: object = None) -> str:
        try:
            snap = ctx.monitor.snapshot()
        except Exception:  # never let the status panel take the page down
            log.exception("monitor snapshot failed")
            return "<div class='conn offline'><span class='dot'></span>Status unavailable</div>"
        visitor = visitor_for(ctx.settings.library, request, browser)
        mine = ctx.desk.views(visitor.person)
        return render(snap, ctx.registry, mine, comfy_url, ctx.desk.previews,
                      ctx.monitor.server_snapshots(),
                      planning=planning_html(snap, ctx.registry, ctx.settings))

    def chosen(value: str | None) -> str | None:
        """The server a button acts on (None: all of them)."""
        return value if value in labels else None

    async def on_free(server: str | None, request: gr.Request) -> tuple[str, str]:
        try:
            text = await ctx.monitor.free_vram(chosen(server))
        except Exception as exc:
            log.warning("free VRAM failed: %s", exc)
            text = "Could not free VRAM: ComfyUI is not reachable."
        return redact(text, comfy_url), panel(request)

    free.click(on_free, [target], [action, status], queue=False, api_visibility="private")

    async def on_warm(mode: str | None, server: str | None, request: gr.Request
                      ) -> tuple[str, str]:
        mode = mode or ctx.registry.names()[0]
        one = chosen(server)
        # One server, or (with several and none chosen) each of them side by side.
        targets: list[str | None] = [one] if one is not None or len(labels) < 2 else [*labels]
        try:
            # "all": the guide's start-of-day step, a tiny request per mode.
            runs = await asyncio.gather(*(
                warm_up(ctx.studio, modes=None if mode == "all" else [mode], server=where)
                for where in targets
            ))
        except Exception as exc:
            log.warning("warm-up failed: %s", exc)
            return redact(f"Warm-up failed: {exc}", comfy_url), panel(request)
        texts = [
            (f"{where}: " if where is not None and len(labels) > 1 else "")
            + _describe_warmup(results, mode, ctx.registry)
            for where, results in zip(targets, runs, strict=True)
        ]
        return redact(" ".join(texts), comfy_url), panel(request)

    warm_options: dict[str, object] = {
        "show_progress": "minimal",
        "show_progress_on": [action],
        "concurrency_limit": WARM_CONCURRENCY,
        "concurrency_id": "warm-up",
        "api_visibility": "private",
    }
    warm.click(on_warm, [current_mode, target], [action, status], **warm_options)  # type: ignore[arg-type]

    async def on_warm_all(server: str | None, request: gr.Request) -> tuple[str, str]:
        return await on_warm("all", server, request)

    warm_all.click(on_warm_all, [target], [action, status], **warm_options)  # type: ignore[arg-type]
    return SidebarHandle(status)


def wire_tick(
    demo: gr.Blocks, ctx: StudioContext, side: SidebarHandle, follower: Follower,
    browser: gr.BrowserState, phone: gr.HTML,
) -> None:
    """Every TICK_S: the sidebar, the queue strip and the phone line (cheap, off the queue)."""
    timer = gr.Timer(TICK_S)

    # Async on purpose: it runs on the server's loop, where the monitor's poller lives
    # (a sync handler would call snapshot() from a worker thread).
    async def on_tick(browser_id: object, request: gr.Request) -> tuple[str, str, str]:
        visitor = visitor_for(ctx.settings.library, request, browser_id)
        try:
            snap = ctx.monitor.snapshot()
        except Exception:
            log.exception("monitor snapshot failed")
            snap = MonitorSnapshot(online=False, error=None)
        mine = sum(1 for v in ctx.desk.views(visitor.person) if v.state.active)
        sidebar = render(snap, ctx.registry, ctx.desk.views(visitor.person),
                         ctx.settings.comfy_url, ctx.desk.previews,
                         ctx.monitor.server_snapshots(),
                         planning=planning_html(snap, ctx.registry, ctx.settings))
        return sidebar, follower.strip_for(visitor), phone_line(snap, mine)

    quiet: dict[str, object] = {"show_progress": "hidden", "queue": False,
                                "api_visibility": "private"}
    outputs = [side.status, follower.strip, phone]
    timer.tick(on_tick, [browser], outputs, **quiet)  # type: ignore[arg-type]
    # Right away on page load too, rather than "Checking…" until the first tick.
    demo.load(on_tick, [browser], outputs, **quiet)  # type: ignore[arg-type]


def _describe_warmup(results: Sequence[WarmupResult], mode: str, registry: ModeRegistry) -> str:
    label = "any mode" if mode == "all" else _title(registry, mode)
    if not results:
        return f"Nothing to warm up for {label}."
    parts = []
    for r in results:
        name = _title(registry, r.mode)
        if r.ok:
            parts.append(f"{name} is warm in {r.seconds:.1f} s.")
        else:
            parts.append(f"{name}: {r.message or 'warm-up failed'}")
    return " ".join(parts)

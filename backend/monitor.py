"""One poller of ComfyUI's `/system_stats` + `/queue` for every viewer.

`snapshot()` never blocks and never raises: it returns the latest poll and marks that someone is
watching. The poll task runs only while someone asked in the last minute, so the request rate to
ComfyUI does not depend on how many pages are open. Readiness (which node classes and model
files each mode needs vs what the server has) is re-checked every ~30 s and right after ComfyUI
comes back. Error texts never contain ComfyUI's URL: they end up in the browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from backend.settings import MODES, Settings

log = logging.getLogger(__name__)

WATCH_WINDOW_S = 60.0        # keep polling this long after the last snapshot()
READINESS_EVERY_S = 30.0
POLL_TIMEOUT_S = 10.0        # one poll never hangs the loop longer than this
SWAP_COST_S = (5.0, 10.0)    # the operations guide: a mode switch costs 5-10 s of model load
GB = 1024**3

# Modes that run on the same diffusion model: switching between them costs no swap.
MODEL_FAMILY: dict[str, str] = {
    "generate": "generation model",
    "edit": "edit model",
    "multiref": "edit model",
    "region_edit": "edit model",
    "inpaint": "edit model",
    "outpaint": "edit model",
    "remove_background": "background-removal model",
}


@dataclass(frozen=True)
class ModeStatus:
    mode: str
    ready: bool | None            # None: not checked yet (or ComfyUI offline)
    missing: str                  # "" when ready; else what to install, in words
    peak_vram_gb: float
    fits: bool | None             # None when VRAM is unknown
    note: str


@dataclass(frozen=True)
class MonitorSnapshot:
    online: bool
    error: str | None
    comfyui_version: str | None = None
    checked_at: float | None = None          # time.time() of the poll; None before the first
    websocket_connected: bool = False
    device_name: str | None = None
    vram_total: int | None = None            # bytes
    vram_free: int | None = None
    comfy_vram_held: int | None = None       # in use by ComfyUI's torch (reclaimable)
    ram_total: int | None = None
    ram_free: int | None = None
    queue_running: tuple[str, ...] = ()
    queue_pending: tuple[str, ...] = ()
    studio_waiting: int = 0                  # jobs held in the studio's own queue (scheduler)
    last_mode: str | None = None
    loaded_model: str | None = None
    swap_cost_s: tuple[float, float] = SWAP_COST_S
    modes: Mapping[str, ModeStatus] = field(default_factory=dict)


def offline_message(exc: BaseException, comfy_url: str = "") -> str:
    """A sentence for the browser: what is wrong, what to do, never the URL."""
    name = type(exc).__name__
    if name in ("ComfyUnreachable", "ConnectError", "ConnectTimeout", "OSError"):
        text = "ComfyUI is not reachable. Check that it is running and that COMFYUI_URL is right."
    elif isinstance(exc, asyncio.TimeoutError | TimeoutError) or "Timeout" in name:
        text = "ComfyUI did not answer in time; it may be busy loading a model or overloaded."
    else:
        text = getattr(exc, "message", None) or f"ComfyUI answered unexpectedly ({name})."
    return scrub(text, comfy_url)


def scrub(text: str, comfy_url: str) -> str:
    """Remove ComfyUI's address from a text that may reach the browser."""
    if not comfy_url:
        return text
    parts = urlsplit(comfy_url)
    for secret in filter(None, (comfy_url, parts.netloc, parts.hostname)):
        text = text.replace(secret, "ComfyUI")
    return text


class Monitor:
    def __init__(self, client: Any, settings: Settings, library: Any, studio: Any = None) -> None:
        self._client = client
        self._settings = settings
        self._library = library
        self._studio = studio
        self._snap = MonitorSnapshot(
            online=False,
            error="Checking ComfyUI…",
            modes={m: self._mode_status(m, None, "", None, None) for m in MODES},
        )
        self._readiness: dict[str, tuple[bool | None, str]] = {}
        self._readiness_at = 0.0
        self._last_watch = 0.0
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._poll_lock: asyncio.Lock | None = None
        self.polls = 0           # how many polls reached out to ComfyUI (tests, bench)

    # -- public ----------------------------------------------------------------------------
    def snapshot(self) -> MonitorSnapshot:
        """The latest poll, immediately. Marks "someone is watching" and starts the poller."""
        self._last_watch = time.monotonic()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None and (self._task is None or self._task.done()):
            self.start()
        elif self._loop is not None and self._wake is not None and loop is not self._loop:
            # Called from a worker thread (a sync Gradio handler): wake the poller safely.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._wake.set)
        elif self._wake is not None:
            self._wake.set()
        return self._with_studio_state(self._snap)

    async def refresh_now(self) -> MonitorSnapshot:
        """Poll right away (not counted as watching) and return the fresh snapshot."""
        await self._poll()
        return self._with_studio_state(self._snap)

    async def free_vram(self) -> str:
        """POST /free (unload models, free memory), then refresh; a sentence for the UI."""
        before = self._snap.vram_free
        try:
            async with asyncio.timeout(POLL_TIMEOUT_S):
                await self._client.free()
        except Exception as exc:  # a sentence, never an exception, for the button
            log.warning("free VRAM failed: %s", exc)
            return "Could not free VRAM: " + offline_message(exc, self._settings.comfy_url)
        # ComfyUI holds no model now: the next job loads one (Started.loading_models, swaps).
        for name in ("last_mode", "loaded_model"):
            if getattr(self._studio, name, None) is not None:
                setattr(self._studio, name, None)
        snap = await self.refresh_now()
        if before is None or snap.vram_free is None:
            return "Asked ComfyUI to unload its models and free memory."
        freed = max(0, snap.vram_free - before)
        free_now = f"{snap.vram_free / GB:.1f} GB free now"
        if freed < GB / 10:
            return f"Nothing to free: no model was loaded ({free_now})."
        return f"Freed {freed / GB:.1f} GB ({free_now})."

    def start(self) -> None:
        """Start the poll task on the running loop (idempotent)."""
        if self._task is not None and not self._task.done():
            return
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = self._loop.create_task(self._run(), name="comfyui-monitor")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        # Cancel until it is really done: a cancel that lands as an await completes can be lost.
        for _ in range(20):
            if task is None or task.done():
                break
            task.cancel()
            with contextlib.suppress(RuntimeError):   # the task's loop is already closed
                await asyncio.wait({task}, timeout=0.5)

    # -- the poll loop ----------------------------------------------------------------------
    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            if time.monotonic() - self._last_watch > WATCH_WINDOW_S:
                # Nobody watching: sleep until the next snapshot() wakes us.
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                await self._poll()
            except asyncio.CancelledError:
                raise
            except Exception:  # _poll handles ComfyUI errors; this is a bug guard
                log.exception("monitor poll crashed")
            await asyncio.sleep(self._settings.poll_interval_s)

    def _lock(self) -> asyncio.Lock:
        if self._poll_lock is None:
            self._poll_lock = asyncio.Lock()
        return self._poll_lock

    async def _poll(self) -> None:
        async with self._lock():
            self.polls += 1
            was_online = self._snap.online
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel.
                async with asyncio.timeout(POLL_TIMEOUT_S):
                    stats, queue = await asyncio.gather(
                        self._client.system_stats(), self._client.queue()
                    )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if was_online or self._snap.checked_at is None:
                    log.warning("ComfyUI went offline: %s", exc)
                self._snap = replace(
                    self._snap,
                    online=False,
                    error=offline_message(exc, self._settings.comfy_url),
                    checked_at=time.time(),
                    websocket_connected=bool(getattr(self._client, "connected", False)),
                    queue_running=(),
                    queue_pending=(),
                )
                self._readiness_at = 0.0    # re-check as soon as it is back
                self._snap = replace(self._snap, modes=self._modes(self._snap))
                return
            if not was_online and self._snap.checked_at is not None:
                log.info("ComfyUI is online again")
            # The shared socket otherwise opens with the first job; /healthz and the sidebar
            # should see it connected as soon as ComfyUI answers.
            open_socket = getattr(self._client, "open_socket", None)
            if open_socket is not None and not getattr(self._client, "connected", True):
                open_socket()
            device = stats.devices[0] if stats.devices else None
            snap = MonitorSnapshot(
                online=True,
                error=None,
                comfyui_version=stats.comfyui_version,
                checked_at=time.time(),
                websocket_connected=bool(getattr(self._client, "connected", False)),
                device_name=device.name if device else None,
                vram_total=device.vram_total if device else None,
                vram_free=device.vram_free if device else None,
                comfy_vram_held=device.torch_vram_held if device else None,
                ram_total=stats.ram_total,
                ram_free=stats.ram_free,
                queue_running=tuple(i.prompt_id for i in queue.running),
                queue_pending=tuple(i.prompt_id for i in queue.pending),
            )
            reconnected = not was_online or (
                snap.websocket_connected and not self._snap.websocket_connected
            )
            if reconnected or time.monotonic() - self._readiness_at > READINESS_EVERY_S:
                await self._check_readiness()
            self._snap = replace(snap, modes=self._modes(snap))

    # -- readiness and fit ------------------------------------------------------------------
    async def _check_readiness(self) -> None:
        try:
            async with asyncio.timeout(POLL_TIMEOUT_S * 3):
                result = await self._readiness_by_mode()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("readiness check failed: %s", exc)
            return    # keep the previous answer; retried on the next poll
        self._readiness = result
        self._readiness_at = time.monotonic()

    async def _readiness_by_mode(self) -> dict[str, tuple[bool | None, str]]:
        from backend.preflight import check_modes

        found = await check_modes(self._client, self._library, self._settings)
        return {mode: (bool(r.ready), describe_missing(r)) for mode, r in found.items()}

    def _modes(self, snap: MonitorSnapshot) -> dict[str, ModeStatus]:
        last = self._current_last_mode()
        out = {}
        for mode in MODES:
            # Offline: keep the last known answer (None until the first check).
            ready, missing = self._readiness.get(mode, (None, ""))
            out[mode] = self._mode_status(
                mode, ready, missing, snap.vram_free, last, snap.comfy_vram_held
            )
        return out

    def _mode_status(
        self,
        mode: str,
        ready: bool | None,
        missing: str,
        vram_free: int | None,
        last: str | None,
        held: int | None = None,
    ) -> ModeStatus:
        peak = float(self._settings.peak_vram_gb.get(mode, 0.0))
        fits, note = estimate_fit(
            mode, peak, vram_free, last, self._settings.peak_vram_gb, held_bytes=held
        )
        return ModeStatus(mode, ready, missing, peak, fits, note)

    # -- what the studio ran last -------------------------------------------------------------
    def _current_last_mode(self) -> str | None:
        mode = getattr(self._studio, "last_mode", None)
        return mode if isinstance(mode, str) else None

    def _with_studio_state(self, snap: MonitorSnapshot) -> MonitorSnapshot:
        last = self._current_last_mode()
        loaded = getattr(self._studio, "loaded_model", None)
        if not isinstance(loaded, str):
            loaded = MODEL_FAMILY.get(last) if last else None
        scheduler = getattr(self._studio, "scheduler", None)
        waiting = len(scheduler.waiting()) if scheduler is not None else 0
        if (last, loaded, waiting) == (snap.last_mode, snap.loaded_model, snap.studio_waiting):
            return snap
        return replace(snap, last_mode=last, loaded_model=loaded, studio_waiting=waiting)


def describe_missing(readiness: Any) -> str:
    """What to install, in words ("" when ready)."""
    message = getattr(readiness, "message", None)
    if isinstance(message, str):
        return message
    return "; ".join(
        f"missing {label}: " + ", ".join(map(str, items))
        for label, items in (
            ("node classes", getattr(readiness, "missing_classes", ())),
            ("model files", getattr(readiness, "missing_models", ())),
        )
        if items
    )


def estimate_fit(
    mode: str,
    peak_gb: float,
    vram_free: int | None,
    last_mode: str | None,
    peaks: Mapping[str, float],
    held_bytes: int | None = None,
) -> tuple[bool | None, str]:
    """Will this mode's peak fit? Free VRAM plus what ComfyUI itself holds.

    ComfyUI unloads (or reuses) the models it holds when another mode needs the memory, so
    what its torch holds (`torch_vram_total - torch_vram_free` in /system_stats: the unused
    reserve is already part of `vram_free`) counts as available;
    when the server does not report it, the last mode's peak stands in. Other services on a
    shared GPU are what the free figure already excludes.
    """
    if vram_free is None:
        return None, f"needs ~{peak_gb:.0f} GB; free VRAM unknown"
    free_gb = vram_free / GB
    if held_bytes is not None:
        held_gb = held_bytes / GB
    else:
        held_gb = float(peaks.get(last_mode, 0.0)) if last_mode else 0.0
    available = free_gb + held_gb
    fits = available >= peak_gb
    if last_mode and MODEL_FAMILY.get(last_mode) == MODEL_FAMILY.get(mode):
        note = f"needs ~{peak_gb:.0f} GB; the {MODEL_FAMILY[mode]} is already loaded"
    elif last_mode:
        note = (
            f"needs ~{peak_gb:.0f} GB; {free_gb:.1f} GB free + ~{held_gb:.0f} GB ComfyUI frees "
            "by unloading what it holds (a model swap costs 5-10 s)"
        )
    else:
        note = f"needs ~{peak_gb:.0f} GB; {free_gb:.1f} GB free"
    if not fits:
        note += " — may run out of memory: lower the resolution or free VRAM on the GPU"
    return fits, note

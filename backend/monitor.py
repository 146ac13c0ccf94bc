"""One poller of ComfyUI's `/system_stats` + `/queue` for every viewer.

`snapshot()` never blocks and never raises: it returns the latest poll and marks that someone is
watching. The poll task runs only while someone asked in the last minute, so the request rate to
ComfyUI does not depend on how many pages are open. Readiness (which node classes and model
files each mode needs vs what the server has) is re-checked every ~30 s and right after ComfyUI
comes back (backend/preflight.py). Error texts never contain ComfyUI's URL: they end up in the
browser (backend/redaction.py). The modes are the registry's, read at every poll, so a mode
registered at runtime shows up on the next one.

Truth over hope: while ComfyUI does not answer, every mode's readiness is unknown (None), and
the studio forgets what it believed was loaded (so does a reconnect or a restart the client
notices: `Studio.notice_server_changes`). On a CPU device (ComfyUI's `--cpu`) the memory is
RAM: every sentence says so (`MEMORY_WORDS`), and what ComfyUI holds is not read from the
device figures (torch's are the whole machine's RAM there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from backend.comfy import QueueSnapshot, SystemStats
from backend.jobs import Studio
from backend.modes import REGISTRY, ModeRegistry, ModeSpec
from backend.preflight import ModeReadiness, check_modes
from backend.redaction import offline_message
from backend.requests import RequestBase
from backend.settings import Settings
from backend.workflows import TemplateLibrary

log = logging.getLogger(__name__)

WATCH_WINDOW_S = 60.0        # keep polling this long after the last snapshot()
READINESS_EVERY_S = 30.0
POLL_TIMEOUT_S = 10.0        # one poll never hangs the loop longer than this
SWAP_COST_S = (5.0, 10.0)    # the operations guide: a mode switch costs 5-10 s of model load
GB = 1024**3


class StatusClient(Protocol):
    """What the monitor asks ComfyUI (backend.comfy.ComfyClient)."""

    @property
    def connected(self) -> bool: ...

    def open_socket(self) -> None: ...

    async def system_stats(self) -> SystemStats: ...

    async def queue(self) -> QueueSnapshot: ...

    async def object_info(self) -> dict[str, Any]: ...

    async def models(self, folder: str) -> list[str]: ...

    async def free(self, unload_models: bool = True, free_memory: bool = True) -> None: ...


@dataclass(frozen=True)
class MemoryWords:
    """How every sentence names the device's memory: one place for the fit estimate's
    wording, the Free button's answers and the UI's labels (`MonitorSnapshot.memory`)."""

    memory: str        # "VRAM" on a GPU, "RAM" on a CPU device
    where: str         # "on the GPU" / "on this machine"


GPU_WORDS = MemoryWords("VRAM", "on the GPU")
CPU_WORDS = MemoryWords("RAM", "on this machine")
MEMORY_WORDS = {"VRAM": GPU_WORDS, "RAM": CPU_WORDS}


@dataclass(frozen=True)
class ModeStatus:
    mode: str
    ready: bool | None            # None: not checked yet (or ComfyUI offline)
    missing: str                  # "" when ready; else what to install or fix, in words
    peak_vram_gb: float
    fits: bool | None             # None when VRAM is unknown
    note: str


@dataclass(frozen=True)
class LastRun:
    """What the studio ran last, as the fit estimate needs it."""

    family: str | None            # None: a mode no longer registered
    peak_gb: float


@dataclass(frozen=True)
class MonitorSnapshot:
    online: bool
    error: str | None
    comfyui_version: str | None = None
    checked_at: float | None = None          # time.time() of the poll; None before the first
    websocket_connected: bool = False
    device_name: str | None = None
    # What the device's memory is called ("VRAM", or "RAM" on a CPU device, where vram_* are
    # the machine's RAM as ComfyUI reports it): label meters and buttons with it.
    memory: str = "VRAM"
    vram_total: int | None = None            # bytes
    vram_free: int | None = None
    comfy_vram_held: int | None = None       # in use by ComfyUI's torch (reclaimable; None
                                             # when unknown, e.g. on a CPU device)
    ram_total: int | None = None
    ram_free: int | None = None
    queue_running: tuple[str, ...] = ()
    queue_pending: tuple[str, ...] = ()
    studio_waiting: int = 0                  # jobs held in the studio's own queue (scheduler)
    last_mode: str | None = None
    loaded_file: str | None = None           # what the last job past its loaders loaded (a
                                             # UNet file, or e.g. BiRefNet's name)
    loaded_family: str | None = None         # its model family ("edit model", …)
    swap_cost_s: tuple[float, float] = SWAP_COST_S
    modes: Mapping[str, ModeStatus] = field(default_factory=dict)


class Monitor:
    def __init__(
        self,
        client: StatusClient,
        settings: Settings,
        library: TemplateLibrary,
        registry: ModeRegistry = REGISTRY,
        studio: Studio | None = None,
    ) -> None:
        self._client = client
        self._settings = settings
        self._library = library
        self._registry = registry
        self._studio = studio
        self._readiness: dict[str, ModeReadiness] = {}
        self._readiness_at = 0.0
        self._last_watch = 0.0
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._poll_lock: asyncio.Lock | None = None
        self.polls = 0           # how many polls reached out to ComfyUI (tests, bench)
        self._snap = MonitorSnapshot(online=False, error="Checking ComfyUI…")
        self._snap = replace(self._snap, modes=self._modes(self._snap))

    # -- public ----------------------------------------------------------------------------
    def snapshot(self) -> MonitorSnapshot:
        """The latest poll, immediately. Marks "someone is watching" and starts the poller."""
        self._last_watch = time.monotonic()
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
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
        return self._current(self._snap)

    async def refresh_now(self) -> MonitorSnapshot:
        """Poll right away (not counted as watching) and return the fresh snapshot."""
        await self._poll()
        return self._current(self._snap)

    async def free_vram(self) -> str:
        """POST /free (unload models, free memory), then refresh; a sentence for the UI."""
        before = self._snap.vram_free
        words = MEMORY_WORDS[self._snap.memory]
        try:
            async with asyncio.timeout(POLL_TIMEOUT_S):
                await self._client.free()
        except Exception as exc:  # a sentence, never an exception, for the button
            log.warning("free %s failed: %s", words.memory, exc)
            return f"Could not free {words.memory}: " + offline_message(
                exc, self._settings.comfy_url)
        # ComfyUI holds no model now: the next job loads one (Started.loading_models, swaps).
        if self._studio is not None:
            self._studio.forget_loaded()
        snap = await self.refresh_now()
        if before is None or snap.vram_free is None:
            return "Asked ComfyUI to unload its models and free memory."
        freed = max(0, snap.vram_free - before)
        free_now = f"{snap.vram_free / GB:.1f} GB {MEMORY_WORDS[snap.memory].memory} free now"
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
                # Down, killed or restarting: whatever it held may be gone.
                if self._studio is not None:
                    self._studio.forget_loaded()
                self._snap = replace(
                    self._snap,
                    online=False,
                    error=offline_message(exc, self._settings.comfy_url),
                    checked_at=time.time(),
                    websocket_connected=self._client.connected,
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
            if not self._client.connected:
                self._client.open_socket()
            if self._studio is not None:
                self._studio.notice_server_changes()
            device = stats.devices[0] if stats.devices else None
            on_cpu = device is not None and device.type == "cpu"
            snap = MonitorSnapshot(
                online=True,
                error=None,
                comfyui_version=stats.comfyui_version,
                checked_at=time.time(),
                websocket_connected=self._client.connected,
                device_name=device.name if device else None,
                memory=(CPU_WORDS if on_cpu else GPU_WORDS).memory,
                vram_total=device.vram_total if device else None,
                vram_free=device.vram_free if device else None,
                # On a CPU device torch's figures are the machine's whole RAM, not ComfyUI's.
                comfy_vram_held=device.torch_vram_held if device and not on_cpu else None,
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
                result = await check_modes(
                    self._client, self._library, self._settings, self._registry
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("readiness check failed: %s", exc)
            return    # keep the previous answer; retried on the next poll
        self._readiness = result
        self._readiness_at = time.monotonic()

    def _modes(self, snap: MonitorSnapshot) -> dict[str, ModeStatus]:
        last = self._last_run()
        out = {}
        for spec in self._registry:
            # Offline: unknown (None), as before the first check; the last answer returns
            # with ComfyUI only after a fresh check (done as it comes back).
            known = self._readiness.get(spec.name) if snap.online else None
            ready = known.ready if known is not None else None
            missing = known.message if known is not None else ""
            out[spec.name] = self._mode_status(spec, ready, missing, snap, last)
        return out

    def _mode_status(
        self,
        spec: ModeSpec[RequestBase],
        ready: bool | None,
        missing: str,
        snap: MonitorSnapshot,
        last: LastRun | None,
    ) -> ModeStatus:
        peak = spec.peak_vram(self._settings)
        fits, note = estimate_fit(
            spec.family.name, peak, snap.vram_free, last, held_bytes=snap.comfy_vram_held,
            words=MEMORY_WORDS[snap.memory],
        )
        return ModeStatus(spec.name, ready, missing, peak, fits, note)

    # -- what the studio ran last -------------------------------------------------------------
    def _last_run(self) -> LastRun | None:
        loaded = self._studio.loaded if self._studio is not None else None
        if loaded is None:
            return None
        mode = loaded.mode
        spec = self._registry.find(mode)
        if spec is None:   # unregistered since it ran: no family, no peak of its own
            return LastRun(None, 0.0)
        return LastRun(spec.family.name, spec.peak_vram(self._settings))

    def _current(self, snap: MonitorSnapshot) -> MonitorSnapshot:
        """The snapshot with what the studio holds right now (cheap: no poll)."""
        studio = self._studio
        loaded = studio.loaded if studio is not None else None
        state = (
            loaded.mode if loaded is not None else None,
            loaded.model if loaded is not None else None,
            loaded.family if loaded is not None else None,
            studio.scheduler.waiting_count if studio is not None else 0,
        )
        if state == (snap.last_mode, snap.loaded_file, snap.loaded_family, snap.studio_waiting):
            return snap
        last_mode, loaded_file, loaded_family, waiting = state
        return replace(
            snap, last_mode=last_mode, loaded_file=loaded_file, loaded_family=loaded_family,
            studio_waiting=waiting,
        )


def estimate_fit(
    family: str,
    peak_gb: float,
    vram_free: int | None,
    last: LastRun | None,
    held_bytes: int | None = None,
    words: MemoryWords = GPU_WORDS,
) -> tuple[bool | None, str]:
    """Will a mode of `family` with this peak fit? Free memory plus what ComfyUI itself holds.

    ComfyUI unloads (or reuses) the models it holds when another mode needs the memory, so
    what its torch holds (`torch_vram_total - torch_vram_free` in /system_stats: the unused
    reserve is already part of `vram_free`) counts as available; when the server does not
    report it (or on a CPU device, where those figures are the whole machine's), the peak of
    what the studio believes is loaded stands in, and nothing when nothing is. Other services
    on a shared device are what the free figure already excludes. Every sentence about fit
    is worded here (`words`: VRAM on a GPU, RAM on a CPU device).
    """
    memory = words.memory
    if vram_free is None:
        return None, f"needs ~{peak_gb:.0f} GB; free {memory} unknown"
    free_gb = vram_free / GB
    if held_bytes is not None:
        held_gb = held_bytes / GB
    else:
        held_gb = last.peak_gb if last is not None else 0.0
    available = free_gb + held_gb
    fits = available >= peak_gb
    if last is not None and last.family == family:
        note = f"needs ~{peak_gb:.0f} GB; the {family} is already loaded"
    elif last is not None:
        note = (
            f"needs ~{peak_gb:.0f} GB; {free_gb:.1f} GB {memory} free + ~{held_gb:.0f} GB "
            "ComfyUI frees by unloading what it holds (a model swap costs 5-10 s)"
        )
    else:
        note = f"needs ~{peak_gb:.0f} GB; {free_gb:.1f} GB {memory} free"
    if not fits:
        note += f" — may run out of memory: lower the resolution or free {memory} {words.where}"
    return fits, note

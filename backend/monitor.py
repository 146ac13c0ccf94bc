"""One poller of ComfyUI's `/system_stats` + `/queue` for every viewer, per server.

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

Several servers: one snapshot per server (`server_snapshots()`, labelled) and an aggregate
(`snapshot()`, what the single-server callers read: online if any server is, a mode ready if
any server is ready for it, unready only if every server is known unready). The poller then
runs at a constant rate whether anyone watches or not (routing needs fresh facts: 2 requests
per server per interval, however many pages are open), and feeds the studio: which servers
are available (also at once from each server's websocket going down or up), other clients'
prompts in each queue, readiness per mode and free memory (`Studio.set_server_status`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from backend.comfy import ConnectionChanged, QueueSnapshot, StatusMessage, SystemStats
from backend.jobs import LoadedModels, Studio
from backend.modes import REGISTRY, ModeRegistry, ModeSpec
from backend.operations.variant import DeviceMemory
from backend.preflight import ModeReadiness, check_modes
from backend.redaction import offline_message
from backend.requests import RequestBase
from backend.settings import Settings
from backend.workflows import TemplateLibrary

log = logging.getLogger(__name__)

WATCH_WINDOW_S = 60.0        # keep polling this long after the last snapshot()
READINESS_EVERY_S = 30.0
# How old a device reading may be for the variant choice (the poller refreshes it every
# poll_interval_s while anyone watches, always with several servers).
MEMORY_FRESH_S = 10.0
# A job waits at most this long for a fresher reading; then the last one (or none) decides.
MEMORY_WAIT_S = 1.0
POLL_TIMEOUT_S = 10.0        # one poll never hangs the loop longer than this
SWAP_COST_S = (5.0, 10.0)    # the operations guide: a mode switch costs 5-10 s of model load
GB = 1024**3


class StatusClient(Protocol):
    """What the monitor asks ComfyUI (backend.comfy.ComfyClient)."""

    @property
    def connected(self) -> bool: ...

    @property
    def session_id(self) -> str: ...     # marks our prompts in its queue (other load = the rest)

    def open_socket(self) -> None: ...

    @property
    def abandoned_prompt_ids(self) -> frozenset[str]: ...

    async def cancel_abandoned(self) -> int: ...

    def add_listener(
        self, listener: Callable[[StatusMessage | ConnectionChanged], None]
    ) -> Callable[[], None]: ...

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
    gguf_ready: bool | None = None   # its GGUF variant could run (None: none, or unknown)


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
    server: str = ""                         # the server's label ("" for the aggregate)
    studio_running: int = 0                  # our jobs running there (all servers: aggregate)


@dataclass(eq=False)
class _Watch:
    """One server: its client, its latest snapshot and readiness."""

    label: str
    client: StatusClient
    snap: MonitorSnapshot
    readiness: dict[str, ModeReadiness] = field(default_factory=dict)
    readiness_at: float = 0.0
    remove_listener: Callable[[], None] | None = None


class Monitor:
    def __init__(
        self,
        client: StatusClient | Mapping[str, StatusClient],
        settings: Settings,
        library: TemplateLibrary,
        registry: ModeRegistry = REGISTRY,
        studio: Studio | None = None,
    ) -> None:
        """`client`: one server's (labelled after settings' first server), or one per server
        by label, the default first."""
        self._settings = settings
        self._memory_refresh: asyncio.Task[MonitorSnapshot] | None = None
        self._library = library
        self._registry = registry
        self._studio = studio
        clients = (
            dict(client) if isinstance(client, Mapping)
            else {settings.servers[0].label: client}
        )
        if not clients:
            raise ValueError("a monitor needs at least one ComfyUI client")
        self._watches = [
            _Watch(label, one, MonitorSnapshot(online=False, error="Checking ComfyUI…",
                                               server=label))
            for label, one in clients.items()
        ]
        self._several = len(self._watches) > 1
        self._last_watch = 0.0
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._soon: asyncio.Event | None = None      # several servers: poll now (a reconnect)
        self._poll_lock: asyncio.Lock | None = None
        self.polls = 0           # how many polls reached out to ComfyUI (tests, bench)
        for watch in self._watches:
            watch.snap = replace(watch.snap, modes=self._modes(watch, watch.snap))
        self._snap = self._aggregate()
        if studio is not None:
            studio.device = self      # the variant choice and the out-of-memory steps ask us

    @property
    def _readiness_at(self) -> float:
        """When readiness was last checked (the oldest server's); 0 forces a re-check."""
        return min(w.readiness_at for w in self._watches)

    @_readiness_at.setter
    def _readiness_at(self, value: float) -> None:
        for watch in self._watches:
            watch.readiness_at = value

    def servers(self) -> tuple[str, ...]:
        """The servers' labels, the default first."""
        return tuple(w.label for w in self._watches)

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

    def server_snapshots(self) -> dict[str, MonitorSnapshot]:
        """Each server's latest poll by label (the default first); like snapshot(), never
        blocks and marks "someone is watching"."""
        self.snapshot()
        return {w.label: self._current_server(w) for w in self._watches}

    def recheck_soon(self) -> None:
        """The modes changed (a workflow app came, changed or went): check readiness at the
        next poll, which starts now (call on the monitor's loop)."""
        self._readiness_at = 0.0
        if self._wake is not None:
            self._wake.set()

    async def refresh_now(self) -> MonitorSnapshot:
        """Poll right away (not counted as watching) and return the fresh snapshot."""
        await self._poll()
        return self._current(self._snap)

    async def device_memory(self, server: str) -> DeviceMemory | None:
        """A server's device memory as the last poll saw it, polled now when that is older
        than MEMORY_FRESH_S (nobody watching: the poller sleeps); None when it is offline or
        does not say. Never a poll per job: a job's start must not wait for ComfyUI."""
        watch = self._watch(server)
        if watch is None:
            return None
        checked = watch.snap.checked_at
        if checked is None or time.time() - checked > max(
                MEMORY_FRESH_S, 2 * self._settings.poll_interval_s):
            # One shared refresh, waited for at most MEMORY_WAIT_S: then the last reading (or
            # none: unknown memory, the setting's plain choice) decides.
            if self._memory_refresh is None or self._memory_refresh.done():
                self._memory_refresh = asyncio.get_running_loop().create_task(
                    self.refresh_now(), name="monitor-memory-refresh")
            await asyncio.wait({self._memory_refresh}, timeout=MEMORY_WAIT_S)
        snap = watch.snap
        if not snap.online or snap.vram_free is None:
            return None
        return DeviceMemory.from_bytes(snap.vram_total, snap.vram_free, snap.comfy_vram_held,
                                       cpu=snap.memory == CPU_WORDS.memory)

    def gguf_ready(self, server: str, mode: str) -> bool | None:
        """Whether the server can run the mode's GGUF variant (None: not checked yet)."""
        watch = self._watch(server)
        known = watch.readiness.get(mode) if watch is not None else None
        return known.gguf_ready if known is not None else None

    def _watch(self, server: str) -> _Watch | None:
        return next((w for w in self._watches if w.label == server), None)

    async def free_vram(self, server: str | None = None) -> str:
        """POST /free (unload models, free memory) on one server or all, then refresh; a
        sentence for the UI (with several servers, one per server, each named)."""
        watches = [w for w in self._watches if server is None or w.label == server]
        if not watches:
            return (f"Could not free memory: there is no ComfyUI server called {server!r} "
                    f"(the servers are {', '.join(self.servers())}).")
        if not self._several:
            return await self._free_one(watches[0])
        sentences = await asyncio.gather(*(self._free_one(w) for w in watches))
        return " ".join(f"{w.label}: {text}" for w, text in zip(watches, sentences, strict=True))

    async def _free_one(self, watch: _Watch) -> str:
        before = watch.snap.vram_free
        words = MEMORY_WORDS[watch.snap.memory]
        try:
            async with asyncio.timeout(POLL_TIMEOUT_S):
                await watch.client.free()
        except Exception as exc:  # a sentence, never an exception, for the button
            log.warning("free %s failed: %s", words.memory, exc)
            return f"Could not free {words.memory}: " + offline_message(
                exc, self._settings.comfy_url)
        # ComfyUI holds no model now: the next job loads one (Started.loading_models, swaps).
        self._forget(watch)
        await self.refresh_now()
        snap = watch.snap
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
        self._soon = asyncio.Event()
        if self._several:
            for watch in self._watches:
                if watch.remove_listener is None:
                    watch.remove_listener = watch.client.add_listener(
                        functools.partial(self._socket_changed, watch)
                    )
        self._task = self._loop.create_task(self._run(), name="comfyui-monitor")

    def _socket_changed(self, watch: _Watch, item: StatusMessage | ConnectionChanged) -> None:
        """Several servers: a server's websocket went down or came up. Routing learns at once
        (no new job goes to a server whose socket just dropped), and a server back gets a
        poll now (readiness, the queue)."""
        if not isinstance(item, ConnectionChanged):
            return
        if self._studio is not None:
            self._studio.scheduler.set_available(watch.label, item.connected)
        if item.connected and self._soon is not None:
            self._soon.set()

    async def aclose(self) -> None:
        for watch in self._watches:
            if watch.remove_listener is not None:
                watch.remove_listener()
                watch.remove_listener = None
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
            if not self._several and time.monotonic() - self._last_watch > WATCH_WINDOW_S:
                # Nobody watching: sleep until the next snapshot() wakes us. (Several servers
                # are always polled: routing reads what the polls learn.)
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                await self._poll()
            except asyncio.CancelledError:
                raise
            except Exception:  # _poll handles ComfyUI errors; this is a bug guard
                log.exception("monitor poll crashed")
            await self._pause()

    async def _pause(self) -> None:
        """The poll interval; with several servers cut short by a server coming back."""
        soon = self._soon
        if not self._several or soon is None:
            await asyncio.sleep(self._settings.poll_interval_s)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._settings.poll_interval_s):
                await soon.wait()
        soon.clear()

    def _lock(self) -> asyncio.Lock:
        if self._poll_lock is None:
            self._poll_lock = asyncio.Lock()
        return self._poll_lock

    async def _poll(self) -> None:
        async with self._lock():
            self.polls += 1
            await asyncio.gather(*(self._poll_server(w) for w in self._watches))
            self._snap = self._aggregate()

    def _forget(self, watch: _Watch) -> None:
        """Whatever this server held may be gone."""
        if self._studio is None:
            return
        if self._several:
            self._studio.forget_loaded(watch.label)
        else:
            self._studio.forget_loaded()

    def _notice(self, watch: _Watch) -> None:
        if self._studio is None:
            return
        if self._several:
            self._studio.notice_server_changes(watch.label)
        else:
            self._studio.notice_server_changes()

    async def _poll_server(self, watch: _Watch) -> None:
        client, old = watch.client, watch.snap
        was_online = old.online
        name = f"ComfyUI {watch.label}" if self._several else "ComfyUI"
        try:
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel.
            async with asyncio.timeout(POLL_TIMEOUT_S):
                stats, queue = await asyncio.gather(client.system_stats(), client.queue())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if was_online or old.checked_at is None:
                log.warning("%s went offline: %s", name, exc)
            # Down, killed or restarting: whatever it held may be gone.
            self._forget(watch)
            snap = replace(
                old,
                online=False,
                error=offline_message(exc, self._settings.comfy_url),
                checked_at=time.time(),
                websocket_connected=client.connected,
                queue_running=(),
                queue_pending=(),
            )
            watch.readiness_at = 0.0    # re-check as soon as it is back
            watch.snap = replace(snap, modes=self._modes(watch, snap))
            self._feed(watch, available=False)
            return
        if not was_online and old.checked_at is not None:
            log.info("%s is online again", name)
        # The shared socket otherwise opens with the first job; /healthz and the sidebar
        # should see it connected as soon as ComfyUI answers.
        if not client.connected:
            client.open_socket()
        self._notice(watch)
        device = stats.devices[0] if stats.devices else None
        on_cpu = device is not None and device.type == "cpu"
        snap = MonitorSnapshot(
            online=True,
            error=None,
            comfyui_version=stats.comfyui_version,
            checked_at=time.time(),
            websocket_connected=client.connected,
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
            server=watch.label,
        )
        reconnected = not was_online or (
            snap.websocket_connected and not old.websocket_connected
        )
        if reconnected or time.monotonic() - watch.readiness_at > READINESS_EVERY_S:
            await self._check_readiness(watch)
        watch.snap = replace(snap, modes=self._modes(watch, snap))
        self._feed(watch, available=True, queue=queue)
        if self._several and client.abandoned_prompt_ids:
            # A job moved away while this server did not answer (its socket may never have
            # dropped): what it left there must not run for nobody.
            await client.cancel_abandoned()

    def _feed(self, watch: _Watch, *, available: bool, queue: QueueSnapshot | None = None
              ) -> None:
        """Several servers: tell the studio's routing what this poll learned."""
        studio = self._studio
        if studio is None or not self._several:
            return
        label = watch.label
        studio.scheduler.set_available(label, available)
        if queue is not None:
            mine = watch.client.session_id
            others = sum(1 for item in (*queue.running, *queue.pending)
                         if item.studio_session != mine)
            studio.scheduler.set_external_load(label, others)
        studio.set_server_status(
            label,
            ready={mode: (status.ready, status.missing) for mode, status in
                   watch.snap.modes.items()},
            vram_free=watch.snap.vram_free if available else None,
        )

    def _aggregate(self) -> MonitorSnapshot:
        """What the single-server callers read: one server's snapshot as it is; with several,
        online if any is, the roomiest online server's device figures, every queue, and per
        mode: ready if any server is, unready only if every server is known unready."""
        snaps = [w.snap for w in self._watches]
        if not self._several:
            return snaps[0]
        online = [s for s in snaps if s.online]
        base = max(online, key=lambda s: s.vram_free or -1) if online else snaps[0]
        modes: dict[str, ModeStatus] = {}
        for name, status in base.modes.items():
            each = [s.modes[name] for s in snaps if name in s.modes]
            readies = [m.ready for m in each]
            ready = True if True in readies else (
                False if readies and all(r is False for r in readies) else None)
            missing = "" if ready is not False else "; ".join(
                f"{s.server}: {s.modes[name].missing}" for s in snaps if name in s.modes)
            fitting = [m.fits for m in each]
            fits = True if True in fitting else (
                False if fitting and all(f is False for f in fitting) else None)
            modes[name] = replace(status, ready=ready, missing=missing, fits=fits)
        checked = [s.checked_at for s in snaps if s.checked_at is not None]
        return replace(
            base,
            online=bool(online),
            error=None if online else base.error,
            checked_at=max(checked) if checked else None,
            websocket_connected=any(s.websocket_connected for s in online),
            queue_running=tuple(p for s in snaps for p in s.queue_running),
            queue_pending=tuple(p for s in snaps for p in s.queue_pending),
            modes=modes,
            server="",
        )

    # -- readiness and fit ------------------------------------------------------------------
    async def _check_readiness(self, watch: _Watch) -> None:
        try:
            async with asyncio.timeout(POLL_TIMEOUT_S * 3):
                result = await check_modes(
                    watch.client, self._library, self._settings, self._registry
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("readiness check failed: %s", exc)
            return    # keep the previous answer; retried on the next poll
        watch.readiness = result
        watch.readiness_at = time.monotonic()

    def _modes(self, watch: _Watch, snap: MonitorSnapshot) -> dict[str, ModeStatus]:
        last = self._last_run(self._loaded(watch))
        out = {}
        for spec in self._registry:
            # Offline: unknown (None), as before the first check; the last answer returns
            # with ComfyUI only after a fresh check (done as it comes back).
            known = watch.readiness.get(spec.name) if snap.online else None
            ready = known.ready if known is not None else None
            missing = known.message if known is not None else ""
            out[spec.name] = replace(self._mode_status(spec, ready, missing, snap, last),
                                     gguf_ready=known.gguf_ready if known is not None else None)
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
    def _loaded(self, watch: _Watch | None) -> LoadedModels | None:
        """What the studio believes `watch`'s server holds (None: the newest anywhere)."""
        studio = self._studio
        if studio is None:
            return None
        if watch is None or not self._several:
            return studio.loaded
        return studio.backend(watch.label).loaded

    def _last_run(self, loaded: LoadedModels | None) -> LastRun | None:
        if loaded is None:
            return None
        mode = loaded.mode
        spec = self._registry.find(mode)
        if spec is None:   # unregistered since it ran: no family, no peak of its own
            return LastRun(None, 0.0)
        return LastRun(spec.family.name, spec.peak_vram(self._settings))

    def _current(self, snap: MonitorSnapshot, watch: _Watch | None = None) -> MonitorSnapshot:
        """The snapshot with what the studio holds right now (cheap: no poll); `watch`: one
        server's (with several), else the aggregate's."""
        studio = self._studio
        loaded = self._loaded(watch)
        running = 0
        if studio is not None:
            running = (studio.scheduler.in_flight if watch is None or not self._several
                       else studio.scheduler.in_flight_on(watch.label))
        state = (
            loaded.mode if loaded is not None else None,
            loaded.model if loaded is not None else None,
            loaded.family if loaded is not None else None,
            studio.scheduler.waiting_count if studio is not None else 0,
            running,
        )
        if state == (snap.last_mode, snap.loaded_file, snap.loaded_family, snap.studio_waiting,
                     snap.studio_running):
            return snap
        last_mode, loaded_file, loaded_family, waiting, running = state
        return replace(
            snap, last_mode=last_mode, loaded_file=loaded_file, loaded_family=loaded_family,
            studio_waiting=waiting, studio_running=running,
        )

    def _current_server(self, watch: _Watch) -> MonitorSnapshot:
        return self._current(watch.snap, watch if self._several else None)


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

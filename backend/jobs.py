"""The job runner: `Studio(client, settings, library, registry).run(request)` → JobEvents.

One path to ComfyUI for the UI, the API and the CLI: validate → prepare (decode, scale;
off the event loop) → upload (content-hash names) → bind (fresh nonce) → execute → fetch the
#output node's images → assemble (full-resolution composite) → Finished. Every expected
failure is a Failed event, never an exception. Closing the iterator early (aclose, task
cancel, a closed browser tab) closes client.execute(), which interrupts or deletes the prompt.

Region edit runs twice on one bound graph: first only the #mask_output branch (ComfyUI's
partial execution), to refuse an empty match; then the whole graph, whose segmentation
nodes ComfyUI serves from its cache. Both passes report progress as one job.

Every job is reported to the studio's observers (metrics is one), whichever surface started
it: the UI, the images API, the CLI.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

from PIL import Image

from backend.comfy import (
    ComfyError,
    ComfyExecutionFailed,
    ComfyPromptLost,
    ComfyUnreachable,
    Executing,
    ExecutionCached,
    ExecutionStart,
    ImageRef,
    Message,
    PreviewImage,
    ProgressMessage,
    PromptDone,
    PromptQueued,
)
from backend.events import (
    FAILURE_KINDS,
    Failed,
    Finished,
    JobEvent,
    JobInfo,
    JobObserver,
    JobStream,
    ModelsLoaded,
    Moved,
    Outcome,
    Preview,
    Progress,
    Queued,
    Started,
    Surface,
)
from backend.failures import OomAdvice, from_comfy_error
from backend.modes import REGISTRY, ModeRegistry, ModeSpec
from backend.operations.base import Prepared
from backend.operations.families import GGUF, ModelFamily
from backend.operations.images import decode_output
from backend.operations.memory import return_large_buffers_to_the_os
from backend.operations.variant import (
    DEFAULT_NAMES,
    LABELS,
    NO_CHOICE,
    DeviceMemory,
    choose_variant,
    expected_peaks,
    remedies,
)
from backend.progress import ProgressTracker
from backend.requests import InvalidRequest, RequestBase
from backend.scheduler import QueueFull, Scheduler, SchedulerConfig, Turn
from backend.settings import Settings
from backend.workflows import Template, TemplateError, TemplateLibrary, bind, new_nonce

log = logging.getLogger(__name__)

__all__ = [
    "FAILURE_KINDS",
    "ComfyJobs",
    "Failed",
    "Finished",
    "JobEvent",
    "LoadedModels",
    "ModelsLoaded",
    "Moved",
    "NotReadyAnywhere",
    "Preview",
    "Progress",
    "Queued",
    "Started",
    "Studio",
]

T = TypeVar("T")
# Failures that say the server, not the job, went wrong: the job may move to another server.
MOVE_KINDS = ("unreachable", "lost")
MOVE_WORDS = {
    "unreachable": "a lost connection",
    "lost": "a restart",
    "out_of_memory": "running out of memory",
}
OOM_RETRY_PIXELS = 0.75  # the retry samples 75% of the pixels (sides × ~0.87)
# At most ~10 previews a second per job: each costs a decode on the event loop (and a browser
# update in the UI); a sampler that fast outruns any eye, and the result follows anyway.
PREVIEW_EVERY_S = 0.1
Spec = ModeSpec[RequestBase]


class ComfyJobs(Protocol):
    """What the studio needs of a ComfyUI client to run jobs (backend.comfy.ComfyClient)."""

    async def upload_image(self, data: bytes) -> ImageRef: ...

    def execute(
        self,
        graph: Mapping[str, Any],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the client's own job deadline
        partial_targets: list[str] | None = None,
    ) -> AsyncIterator[Message | PromptQueued | PromptDone]: ...

    async def view(self, ref: ImageRef) -> bytes: ...

    @property
    def epoch(self) -> int: ...              # grows on every websocket (re)connect

    @property
    def server_generation(self) -> int: ...  # grows when ComfyUI restarted


class DeviceProbe(Protocol):
    """What the studio asks about a server's device (backend.monitor.Monitor)."""

    async def device_memory(self, server: str) -> DeviceMemory | None: ...

    def gguf_ready(self, server: str, mode: str) -> bool | None: ...

    async def free_vram(self, server: str | None = None) -> str: ...


@asynccontextmanager
async def _closing(stream: AsyncIterator[T]) -> AsyncIterator[AsyncIterator[T]]:
    """Close an async generator when the block ends (contextlib.aclosing wants the type)."""
    try:
        yield stream
    finally:
        if isinstance(stream, AsyncGenerator):
            await stream.aclose()


@dataclass
class _Run:
    """Mutable bookkeeping of one attempt (both passes of a region edit)."""

    mode: str
    model: str | None
    loading_models: bool
    server: str
    family: ModelFamily | None = None
    shown: str | None = None                     # what it loads, in words (family.shown)
    loaders: frozenset[str] = frozenset()        # node ids of the family's loader roles
    done_nodes: set[str] = field(default_factory=set)   # ran (or cached) and finished
    cached_nodes: set[str] = field(default_factory=set)
    current_node: str | None = None
    loaded: ModelsLoaded | None = None           # set once the loaders are done
    tracker: ProgressTracker | None = None
    announced: bool = False
    prompt_id: str | None = None
    queued_at: float = 0.0
    started_at: float | None = None
    done: PromptDone | None = None
    preview_at: float = -math.inf
    timings: dict[str, float] = field(
        default_factory=lambda: {
            "upload_s": 0.0, "studio_wait_s": 0.0, "queued_s": 0.0, "run_s": 0.0
        }
    )


class NotReadyAnywhere(InvalidRequest):
    """Every ComfyUI server is known to lack what this mode needs (several servers only: with
    one, the job goes and ComfyUI's own refusal names the missing file). A surface refuses it
    like a missing model (the API's 424)."""


@dataclass(frozen=True)
class Admission:
    """A job the studio accepted: checked (cheaply: nothing decoded) and holding its place in
    the studio's line. `since` is when it was admitted (time.monotonic()); `servers` where it
    may run (None: any)."""

    request: RequestBase
    spec: Spec
    turn: Turn
    owner: str
    since: float
    servers: frozenset[str] | None = None


@dataclass(frozen=True)
class LoadedModels:
    """What the studio believes ComfyUI holds: what the last job that got past its model
    loaders loaded. `model` names it for people (a UNet file, or e.g. BiRefNet's name)."""

    mode: str
    family: str
    model: str | None


@dataclass
class Backend:
    """One ComfyUI server as the studio sees it: its client, what it is believed to hold (only
    a job past its loaders changes that; a restart, a reconnect or POST /free clears it), and
    what the monitor last learned (readiness per mode, free memory)."""

    label: str
    client: ComfyJobs
    loaded: LoadedModels | None = None
    loaded_file: str | None = None           # the diffusion model (Started.loading_models)
    loaded_at: float = 0.0                   # when `loaded` was set (the newest one is shown)
    seen: tuple[int, int] | None = None      # the client's (epoch, generation) then
    ready: dict[str, bool | None] = field(default_factory=dict)   # per mode; absent: unknown
    missing: dict[str, str] = field(default_factory=dict)         # why a mode is not ready
    vram_free: int | None = None

    def forget(self) -> None:
        self.loaded = None
        self.loaded_file = None
        self.seen = None


class Studio:
    def __init__(
        self,
        client: ComfyJobs | Mapping[str, ComfyJobs],
        settings: Settings,
        library: TemplateLibrary,
        registry: ModeRegistry = REGISTRY,
        observers: Sequence[JobObserver] = (),
    ) -> None:
        """`client`: one server's client (labelled after settings' first server), or one per
        server by label (the first is the default)."""
        clients = (
            dict(client) if isinstance(client, Mapping)
            else {settings.servers[0].label: client}
        )
        if not clients:
            raise ValueError("a studio needs at least one ComfyUI client")
        self.backends: dict[str, Backend] = {
            label: Backend(label, one) for label, one in clients.items()
        }
        self._default = next(iter(self.backends.values()))
        self.client = self._default.client
        self.settings = settings
        self.library = library
        self.registry = registry
        self.observers = tuple(observers)
        # Jobs wait here for their turn, grouped by model if settings.scheduling says so, and
        # go to the server routing picks.
        self.scheduler = Scheduler(
            SchedulerConfig.from_settings(settings), servers=tuple(self.backends)
        )
        # Full-resolution composites (Operation.assembles_full_size), one at a time: with the
        # turn (one prepare per server) this bounds what large inputs cost the process; and
        # their freed buffers go back to the OS (backend/operations/memory.py).
        self._full_size = asyncio.Semaphore(1)
        return_large_buffers_to_the_os()
        # The monitor sets itself here: device memory for the variant choice, readiness of
        # the GGUF variant, and POST /free for the out-of-memory steps (None: none of them).
        self.device: DeviceProbe | None = None

    # -- what the studio believes each server holds ------------------------------------------
    def _newest(self) -> Backend | None:
        holding = [b for b in self.backends.values() if b.loaded is not None]
        return max(holding, key=lambda b: b.loaded_at) if holding else None

    @property
    def loaded(self) -> LoadedModels | None:
        """What the server that loaded last holds (the only server's, with one)."""
        newest = self._newest()
        return newest.loaded if newest is not None else None

    @property
    def loaded_file(self) -> str | None:
        """The diffusion model file of `loaded`'s server."""
        newest = self._newest()
        return newest.loaded_file if newest is not None else None

    @property
    def last_mode(self) -> str | None:
        """The mode of the last job that got past its model loaders (None: none, or forgotten)."""
        loaded = self.loaded
        return loaded.mode if loaded is not None else None

    def backend(self, server: str | None) -> Backend:
        """The server a turn was released to (the default for a scheduler that does not know
        our labels, as tests make: one server runs everything)."""
        if server is not None:
            found = self.backends.get(server)
            if found is not None:
                return found
        return self._default

    def forget_loaded(self, server: str | None = None) -> None:
        """ComfyUI holds nothing of ours any more on `server` (None: on every server; after
        POST /free, a restart, a reconnect): the next job there loads again, and says so;
        the line stops grouping by the old model there."""
        for backend in self.backends.values():
            if server is None or backend.label == server:
                backend.forget()
                if backend.label in self.scheduler.servers():
                    self.scheduler.forget_loaded(backend.label)

    def notice_server_changes(self, server: str | None = None) -> bool:
        """Forget what was loaded on a server whose client saw ComfyUI reconnect or restart
        since that belief was formed (client.epoch, client.server_generation). A reconnect may
        be a restart the studio cannot tell apart: it assumes cold. True when it forgot."""
        forgot = False
        for backend in self.backends.values():
            if server is not None and backend.label != server or backend.seen is None:
                continue
            if (backend.client.epoch, backend.client.server_generation) == backend.seen:
                continue
            log.info("ComfyUI %s reconnected or restarted: forgetting that %s was loaded",
                     backend.label,
                     backend.loaded.model if backend.loaded is not None else "a model")
            self.forget_loaded(backend.label)
            forgot = True
        return forgot

    def set_server_status(
        self,
        server: str,
        *,
        ready: Mapping[str, tuple[bool | None, str]],
        vram_free: int | None,
    ) -> None:
        """What the monitor learned of one server: per mode (ready or not, or None: unknown;
        and why not), and its free memory. Routing and failover read it."""
        backend = self.backends[server]
        backend.ready = {mode: known for mode, (known, _) in ready.items()}
        backend.missing = {mode: why for mode, (known, why) in ready.items() if known is False}
        backend.vram_free = vram_free

    def servers_for(self, spec: Spec, only: str | None = None) -> frozenset[str] | None:
        """Where a job of this mode may run: None for anywhere; `only` names one server.
        Raises InvalidRequest for an unknown `only`, NotReadyAnywhere when every server is
        known to lack what the mode needs (several servers only)."""
        if only is not None:
            if only not in self.backends:
                raise InvalidRequest(
                    f"There is no ComfyUI server called {only!r}; the servers are "
                    f"{', '.join(self.backends)}.", "server",
                )
            return frozenset({only})
        if len(self.backends) == 1:
            return None
        ready = frozenset(b.label for b in self.backends.values()
                          if b.ready.get(spec.name) is not False)
        if not ready:
            reasons = "; ".join(
                f"{b.label}: {b.missing.get(spec.name) or 'not ready'}"
                for b in self.backends.values()
            )
            raise NotReadyAnywhere(
                f"{spec.title} is not ready on any ComfyUI server ({reasons})."
            )
        return None if len(ready) == len(self.backends) else ready

    def admit(
        self, request: RequestBase, *, owner: str = "", server: str | None = None
    ) -> Admission:
        """Check the request cheaply and take a place in the studio's line for `owner`
        (`server`: on that server only, e.g. a warm-up). Raises InvalidRequest (or
        NotReadyAnywhere) or QueueFull at once, so a surface can refuse before it waits (the
        API's 400, 424 and 429). Nothing is decoded: a waiting job holds what was sent."""
        spec = self.registry.spec_for(request)
        if spec is None:
            raise InvalidRequest(f"{type(request).__name__} is not a studio request.")
        spec.operation.validate(request, self.settings)
        servers = self.servers_for(spec, server)
        turn = self.scheduler.enter(
            spec.family.unet(request, self.settings), owner=owner, servers=servers
        )
        return Admission(request, spec, turn, owner, time.monotonic(), servers)

    async def run(
        self, job: RequestBase | Admission, *, surface: Surface = "ui", owner: str = ""
    ) -> JobStream:
        """The job's events, reported to every observer as they pass. Given a request, it is
        admitted here (a refusal is the first and only event)."""
        request = job.request if isinstance(job, Admission) else job
        mode = request.mode if isinstance(request, RequestBase) and request.mode else "unknown"
        info = JobInfo(mode, surface, time.monotonic())
        self._observe(info)
        outcome: Outcome = "abandoned"
        try:
            async with _closing(self._run(job, owner)) as events:
                async for event in events:
                    if isinstance(event, Finished):
                        outcome = "finished"
                    elif isinstance(event, Failed):
                        outcome = "failed"
                    self._observe(info, event)
                    yield event
        finally:
            self._observe(info, outcome=outcome)

    def _observe(
        self, job: JobInfo, event: JobEvent | None = None, outcome: Outcome | None = None
    ) -> None:
        for observer in self.observers:
            try:
                if outcome is not None:
                    observer.job_ended(job, outcome)
                elif event is not None:
                    observer.job_event(job, event)
                else:
                    observer.job_started(job)
            except Exception:  # an observer's bug must not break the job
                log.exception("job observer %r failed", observer)

    async def _run(self, job: RequestBase | Admission, owner: str) -> JobStream:
        if isinstance(job, Admission):
            admission = job
        else:
            try:
                admission = self.admit(job, owner=owner)
            except NotReadyAnywhere as exc:
                yield Failed(exc.message, "", "missing_models")
                return
            except InvalidRequest as exc:
                yield Failed(exc.message, "", "invalid_input", exc.field)
                return
            except QueueFull as exc:
                yield Failed(exc.message, f"retry after {exc.retry_after_s} s", "busy")
                return
        turn = admission.turn
        try:
            async with _closing(self._admitted(admission)) as events:
                async for event in events:
                    yield event
        finally:
            turn.leave()

    async def _admitted(self, admission: Admission) -> JobStream:
        """Wait in line, pick the variant (STUDIO_VARIANT, the server's memory), then prepare
        (the first decode of the inputs) and run. After a failure: one move to another server
        when the first one went away (or, with STUDIO_OOM_RETRY, ran out of memory and
        another has more free); with STUDIO_OOM_RETRY, out of memory takes the guide's steps
        in order, each once: free ComfyUI's cached models, the GGUF variant, one resolution
        step lower (_oom_step; Finished/Failed.oom_steps, and a note each)."""
        request, spec, started = admission.request, admission.spec, admission.since
        wait_start = time.monotonic()
        async for position in admission.turn.wait():
            yield Queued(position, "")  # in the studio's queue: no prompt id yet
        # Time held in the studio's own line (queued_s is ComfyUI's queue).
        timings = {"studio_wait_s": time.monotonic() - wait_start}
        request, chosen = await self._pick_variant(request, spec, admission.turn.server)
        first = await self._prepare(request, spec, self.settings)
        if isinstance(first, Failed):
            yield first
            return
        prepared = first
        turn = admission.turn
        notes: tuple[str, ...] = (chosen,) if chosen else ()
        moved = shrunk = False
        steps: tuple[str, ...] = ()  # the out-of-memory steps taken (Finished.oom_steps)
        turns: list[Turn] = []       # the turns taken here (the admission's is _run's)
        try:
            while True:
                failure: Failed | None = None
                attempt = self._attempt(request, spec, prepared, turn, started, notes, timings)
                async with _closing(attempt) as events:
                    async for event in events:
                        if isinstance(event, Failed) and self._may_retry(event, moved, shrunk):
                            failure = event
                            break
                        if isinstance(event, Finished | Failed) and steps:
                            event = replace(event, oom_steps=steps)
                        yield event
                if failure is None:
                    return
                turn.leave()         # a failed upload still held it
                source = self.backend(turn.server).label
                targets = None if moved else self._move_targets(admission, failure, source)
                if targets:
                    # The same request on another server, keeping its place in line.
                    turn = self.scheduler.enter(
                        prepared.diffusion_model, owner=admission.owner, since=turn.since,
                        servers=targets, capped=False,
                    )
                    turns.append(turn)
                    async for position in turn.wait():
                        yield Queued(position, "")
                    target = self.backend(turn.server).label
                    note = (f"Moved from {source} to {target} after "
                            f"{MOVE_WORDS.get(failure.kind, failure.kind)}.")
                    log.warning("%s job: %s (%s)", prepared.mode, note, failure.detail)
                    yield Moved(source, target, failure.kind, note)
                    notes += (note,)
                    timings = {**timings, "moved_after_s": time.monotonic() - started}
                    moved = True
                    if failure.kind == "out_of_memory":
                        steps += ("move",)
                        shrunk = True
                    continue
                if failure.kind != "out_of_memory" or shrunk:
                    yield replace(failure, oom_steps=steps)
                    return
                step = await self._oom_step(request, spec, prepared, source, steps)
                if step is None:
                    yield replace(failure, oom_steps=steps)
                    return
                name, request, retried, note = step
                log.info("%s: %s", prepared.mode, note)
                if name == "smaller":
                    timings = {"oom_retry_after_s": time.monotonic() - started, **timings}
                    shrunk = True
                prepared = retried
                steps += (name,)
                notes += (note,)
                # The retry keeps the job's place (its first turn's time), past the caps:
                # admitted. Freed memory and GGUF are this server's remedies: it stays.
                here = frozenset({source}) if name != "smaller" and len(self.backends) > 1 \
                    else admission.servers
                turn = self.scheduler.enter(
                    retried.diffusion_model, owner=admission.owner, since=turn.since,
                    servers=here, capped=False,
                )
                turns.append(turn)
                async for position in turn.wait():
                    yield Queued(position, "")
        finally:
            for taken in turns:
                taken.leave()

    async def _pick_variant(
        self, request: RequestBase, spec: Spec, server: str | None
    ) -> tuple[RequestBase, str | None]:
        """The request with the variant it runs (STUDIO_VARIANT, the expected peaks and the
        server's memory: backend/operations/variant.py) and the sentence that says why."""
        peaks = self._peaks(spec)
        if request.variant not in NO_CHOICE or GGUF not in peaks:
            return request, None        # the person chose, or there is nothing to choose
        label = self.backend(server).label
        choice = choose_variant(
            setting=self.settings.variant, explicit=request.variant, peaks=peaks,
            memory=await self._memory(label), gguf_installed=self._gguf_ready(spec, label),
        )
        if choice.note:
            log.log(logging.INFO if choice.fits else logging.WARNING, "%s on %s: %s",
                    spec.name, label, choice.note)
        if choice.variant != request.variant:
            request = replace(request, variant=choice.variant)
        return request, choice.note

    def _peaks(self, spec: Spec) -> dict[str, float]:
        """The mode's expected peak per variant it has (GGUF: family files and template)."""
        has_gguf = spec.family.gguf is not None
        if has_gguf:
            try:
                has_gguf = GGUF in self.library.variants(spec.name)
            except TemplateError:
                has_gguf = False
        return expected_peaks(spec.name, spec.peak_vram(self.settings), self.settings, has_gguf)

    async def _memory(self, server: str) -> DeviceMemory | None:
        if self.device is None:
            return None
        try:
            return await self.device.device_memory(server)
        except Exception:  # the monitor's trouble must not stop a job; unknown is fine
            log.exception("device memory of %s unavailable", server)
            return None

    def _gguf_ready(self, spec: Spec, server: str) -> bool:
        return self.device is not None and self.device.gguf_ready(server, spec.name) is True

    async def _oom_step(
        self, request: RequestBase, spec: Spec, prepared: Prepared, server: str,
        taken: tuple[str, ...],
    ) -> tuple[str, RequestBase, Prepared, str] | None:
        """The next out-of-memory remedy in the guide's order, not yet taken: free ComfyUI's
        cached models and retry; the GGUF variant (installed, not running yet); one
        resolution step lower. (step, request, prepared, note), or None when none is left."""
        at = _size(prepared.work_size)
        if "free" not in taken and self.device is not None:
            said = await self.device.free_vram(server)
            log.info("out of memory on %s, freed: %s", server, said)
            return ("free", request, prepared,
                    f"Out of memory at {at}: freed ComfyUI's cached models and retried.")
        if ("gguf" not in taken and request.variant in DEFAULT_NAMES
                and GGUF in self._peaks(spec) and self._gguf_ready(spec, server)):
            gguf = replace(request, seed=prepared.seed, variant=GGUF)
            again = await self._prepare(gguf, spec, self.settings)
            if not isinstance(again, Failed):
                peaks = self._peaks(spec)
                return ("gguf", gguf, again,
                        f"Out of memory with fp8 at {at}; retried with the {LABELS[GGUF]} "
                        f"variant (~{peaks['fp8'] - peaks[GGUF]:.0f} GB less).")
        smaller = await self._smaller(request, spec, prepared)
        if smaller is None:
            return None
        retry, retried = smaller
        return ("smaller", retry, retried,
                f"Out of memory at {at}; retried once at {_size(retried.work_size)}.")

    async def _oom_advice(self, request: RequestBase, spec: Spec, server: str) -> OomAdvice:
        """This device's remedies for an out-of-memory failure (free memory now, what each
        saves), and whether its memory is RAM; the guide's list when the device is unknown."""
        memory = await self._memory(server)
        if memory is None:
            return OomAdvice()
        peaks = self._peaks(spec)
        gguf_used = request.variant == GGUF
        peak = peaks[GGUF] if gguf_used else peaks["fp8"]
        return OomAdvice(memory.cpu, remedies(
            memory, peaks, peak - memory.available_gb, gguf_used=gguf_used,
            can_gguf=self._gguf_ready(spec, server)))

    def _may_retry(self, failed: Failed, moved: bool, shrunk: bool) -> bool:
        """Whether this failure might be retried (the plan comes after the attempt closed)."""
        if failed.kind in MOVE_KINDS:
            return not moved and len(self.backends) > 1
        return failed.kind == "out_of_memory" and self.settings.oom_retry and not shrunk

    def _move_targets(
        self, admission: Admission, failed: Failed, source: str
    ) -> frozenset[str] | None:
        """The other servers this job may move to after `failed` on `source` (None: none).
        A server that went away or lost the prompt: any other available one ready for the
        mode. Out of memory (STUDIO_OOM_RETRY): only one with more free memory."""
        if len(self.backends) < 2 or failed.kind not in (*MOVE_KINDS, "out_of_memory"):
            return None
        mode = admission.spec.name
        allowed = admission.servers or frozenset(self.backends)
        routable = set(self.scheduler.servers())
        others = [
            b for b in self.backends.values()
            if b.label != source and b.label in allowed and b.label in routable
            and b.ready.get(mode) is not False and self.scheduler.available(b.label)
        ]
        if failed.kind == "out_of_memory":
            here = self.backends[source].vram_free
            others = [b for b in others if b.vram_free is not None
                      and (here is None or b.vram_free > here)]
        return frozenset(b.label for b in others) or None

    def _server_trouble(self, server: str, exc: ComfyError) -> None:
        """A server failed under a job: unreachable → it takes nothing more until the monitor
        (or its socket) sees it back, and whatever it held may be gone; a lost prompt → it
        restarted cold. With one server nothing changes: the next job goes and says why."""
        if len(self.backends) < 2 or server not in self.scheduler.servers():
            return
        if isinstance(exc, ComfyUnreachable):
            self.scheduler.set_available(server, False)
            self.forget_loaded(server)
        elif isinstance(exc, ComfyPromptLost):
            self.forget_loaded(server)

    # --- preparation ----------------------------------------------------------------------

    async def _prepare(
        self, request: RequestBase, spec: Spec, settings: Settings
    ) -> Prepared | Failed:
        try:
            spec.operation.validate(request, settings)
            # Decoding and scaling big images is CPU work: keep the event loop free.
            return await asyncio.to_thread(spec.operation.prepare, request, settings)
        except InvalidRequest as exc:
            return Failed(exc.message, "", "invalid_input", exc.field)

    async def _smaller(
        self, request: RequestBase, spec: Spec, prepared: Prepared
    ) -> tuple[RequestBase, Prepared] | None:
        """The same request one resolution step lower (same seed), or None if it cannot be."""
        if prepared.work_size is None:
            return None
        retry, settings = spec.operation.smaller(
            replace(request, seed=prepared.seed), prepared.work_size, OOM_RETRY_PIXELS,
            self.settings,
        )
        again = await self._prepare(retry, spec, settings)
        if isinstance(again, Failed) or again.work_size == prepared.work_size:
            return None
        return retry, again

    # --- one attempt ------------------------------------------------------------------------

    async def _attempt(
        self,
        request: RequestBase,
        spec: Spec,
        prepared: Prepared,
        turn: Turn,
        started: float,
        notes: tuple[str, ...] = (),
        extra_timings: Mapping[str, float] | None = None,
    ) -> JobStream:
        """One submission on the turn just given (released), on the server it was released
        to: upload, bind, run, assemble."""
        op = spec.operation
        model = prepared.diffusion_model
        backend = self.backend(turn.server)
        client, server = backend.client, backend.label
        self.notice_server_changes(server)
        run = _Run(prepared.mode, model, model is not None and model != backend.loaded_file,
                   server, spec.family, spec.family.shown_model(request, self.settings))
        run.timings.update(extra_timings or {})
        try:
            template: Template = self.library.get(
                prepared.mode, request.variant, required=spec.roles
            )
            upload_start = time.monotonic()
            files = {
                role: (await client.upload_image(data)).load_name
                for role, data in prepared.uploads.items()
            }
            run.timings["upload_s"] = time.monotonic() - upload_start
            graph = bind(template, prepared.bindings(template.roles, files), nonce=new_nonce())
            run.loaders = frozenset(
                node for role in spec.family.loaders for node in template.nodes_with(role)
                if node in graph
            )
        except TemplateError as exc:
            yield Failed(exc.message, exc.detail, "rejected")
            return
        except ComfyError as exc:
            self._server_trouble(server, exc)
            yield replace(from_comfy_error(exc, models=self.settings.models), server=server)
            return

        run.tracker = ProgressTracker(graph)
        outputs: dict[str, list[Image.Image]] = {}
        try:
            precheck = op.precheck_role
            if precheck and precheck in template.output_roles:
                node = template.output_roles[precheck]
                async with _closing(self._follow(graph, run, [node])) as events:
                    async for event in events:
                        yield event
                outputs[precheck] = await self._fetch(client, run.done, node)
                try:
                    op.check_precheck(prepared, outputs[precheck])
                except InvalidRequest as exc:
                    yield Failed(exc.message, "", "invalid_input", exc.field)
                    return
            async with _closing(self._follow(graph, run, None)) as events:
                async for event in events:
                    yield event
            turn.leave()  # ComfyUI is done with it: the next job goes while we fetch
            for role, node in template.output_roles.items():
                if role not in outputs:
                    outputs[role] = await self._fetch(client, run.done, node)
        except ComfyError as exc:
            # Before the turn is left (the next job must not go to a server that is gone),
            # and before the consumer gets the error (it may hold on to it).
            self._server_trouble(server, exc)
            turn.leave()
            oom = (await self._oom_advice(request, spec, server)
                   if isinstance(exc, ComfyExecutionFailed) and exc.is_oom else None)
            yield replace(from_comfy_error(
                exc, graph=graph, template=str(template.path), work_size=prepared.work_size,
                models=self.settings.models, oom=oom,
            ), server=server)
            return

        if not outputs.get("output"):
            yield Failed(
                f"ComfyUI finished, but the #output node of {template.path.name} saved no "
                "image: check that it feeds a SaveImage.",
                f"{template.path}: outputs {run.done.outputs if run.done else None}", "execution",
            )
            return
        try:
            if op.assembles_full_size:
                async with self._full_size:
                    result = await asyncio.to_thread(op.assemble, prepared, outputs)
            else:
                result = await asyncio.to_thread(op.assemble, prepared, outputs)
        except ValueError as exc:  # e.g. a template whose #mask_output saved nothing
            yield Failed(f"The result could not be assembled: {exc}.", repr(exc), "execution")
            return
        run.timings["total_s"] = time.monotonic() - started
        yield Finished(
            images=result.images,
            seed=prepared.seed,
            timings=run.timings,
            workflow=graph,
            mode=prepared.mode,
            extras=result.extras,
            models_loaded=run.loaded.swapped if run.loaded is not None else run.loading_models,
            notes=prepared.notes + notes,
            prompt_id=run.prompt_id,
            server=server,
        )

    async def _follow(
        self, graph: dict[str, Any], run: _Run, targets: list[str] | None
    ) -> JobStream:
        """One submission: ComfyUI's messages → events; leaves the PromptDone in `run.done`."""
        tracker = run.tracker
        assert tracker is not None
        run.done = None
        stream = self.backend(run.server).client.execute(
            graph, timeout=self.settings.job_timeout_s, partial_targets=targets or None
        )
        async with _closing(stream):
            async for item in stream:
                if isinstance(item, PromptQueued):
                    run.prompt_id, run.queued_at = item.prompt_id, time.monotonic()
                    run.started_at = None
                    yield Queued(item.position, item.prompt_id, run.server)
                elif isinstance(item, ExecutionStart):
                    run.started_at = time.monotonic()
                    run.timings["queued_s"] += run.started_at - run.queued_at
                    started = self._announce(run)
                    if started:
                        yield started
                elif isinstance(item, ExecutionCached) and item.nodes:
                    run.done_nodes.update(item.nodes)
                    run.cached_nodes.update(item.nodes)
                    yield tracker.cached(item.nodes)
                    loaded = self._past_loaders(run)
                    if loaded:
                        yield loaded
                elif isinstance(item, Executing) and item.node is not None:
                    # ComfyUI runs one node at a time: the one before this one finished.
                    if run.current_node is not None:
                        run.done_nodes.add(run.current_node)
                    run.current_node = item.node
                    yield tracker.executing(item.node)
                    loaded = self._past_loaders(run)
                    if loaded:
                        yield loaded
                elif isinstance(item, ProgressMessage):
                    yield tracker.progress(item.node, item.value, item.max)
                elif isinstance(item, PreviewImage):
                    now = time.monotonic()
                    if now - run.preview_at < PREVIEW_EVERY_S:
                        continue
                    image = _decode_preview(item.image)
                    if image is not None:
                        run.preview_at = now
                        yield Preview(image)
                elif isinstance(item, PromptDone):
                    # A result recovered from /history after a socket drop skips the messages.
                    started = self._announce(run)
                    if started:
                        yield started
                    since = run.started_at if run.started_at is not None else run.queued_at
                    run.timings["run_s"] += time.monotonic() - since
                    run.done = item
                    # Success: what ran finished (a whole graph: every loader, even when the
                    # messages were missed and the result came from /history).
                    if run.current_node is not None:
                        run.done_nodes.add(run.current_node)
                        run.current_node = None
                    if targets is None:
                        run.done_nodes.update(run.loaders)
                    loaded = self._past_loaders(run)
                    if loaded:
                        yield loaded

    def _announce(self, run: _Run) -> Started | None:
        """The job's one Started event."""
        if run.announced:
            return None
        run.announced = True
        return Started(run.loading_models, run.server)

    def _past_loaders(self, run: _Run) -> ModelsLoaded | None:
        """Once per attempt, when every loader node of the job's family has finished (ran or
        was cached): record what ComfyUI now holds, and say so. A job that fails before (in
        VAELoader, say) changes nothing and counts no swap."""
        if run.loaded is not None or run.family is None or not run.loaders:
            return None
        if not run.loaders <= run.done_nodes:
            return None
        backend = self.backend(run.server)
        self.notice_server_changes(backend.label)
        # Loaders ComfyUI served from its cache loaded nothing: their models were still there
        # (after a reconnect that was no restart, say).
        swapped = (run.model is not None and run.model != backend.loaded_file
                   and not run.loaders <= run.cached_nodes)
        run.loaded = ModelsLoaded(run.family.name, run.shown, swapped, backend.label)
        backend.loaded = LoadedModels(run.mode, run.family.name, run.shown)
        backend.loaded_at = time.monotonic()
        if run.model is not None:
            backend.loaded_file = run.model
        backend.seen = (backend.client.epoch, backend.client.server_generation)
        return run.loaded

    async def _fetch(
        self, client: ComfyJobs, done: PromptDone | None, node_id: str
    ) -> list[Image.Image]:
        """The images one known output node saved (never "the first image in history")."""
        if done is None:
            return []
        refs = done.images(node_id)
        blobs = await asyncio.gather(*(client.view(ref) for ref in refs))
        try:
            return [await asyncio.to_thread(decode_output, blob) for blob in blobs]
        except OSError as exc:
            raise ComfyError(
                f"ComfyUI's result from node {node_id} is not an image the studio can read.",
                f"{refs}: {exc}",
            ) from exc


def _decode_preview(data: bytes) -> Image.Image | None:
    # Decoded here, not lazily: a cut-off frame must be skipped, not fail in whoever draws it.
    try:
        image = decode_output(data)
        image.load()
        return image
    except (OSError, SyntaxError, ValueError) as exc:
        log.debug("skipping an undecodable preview: %s", exc)
        return None


def _size(size: tuple[int, int] | None) -> str:
    return f"{size[0]}×{size[1]}" if size else "?"

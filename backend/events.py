"""The events of one job (`studio.run(request)`): small immutable values, in this order:
Queued → Started → (Progress | Preview | ModelsLoaded)* → Finished | Failed. Errors are
events too. (ModelsLoaded comes at most once per submission, when the loaders are done.)

Re-exported by `backend.jobs`, where callers import them from.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from PIL import Image

# Who started a job: a browser tab, the images API, the chat API or the command line.
Surface = Literal["ui", "api", "chat", "cli"]

# Failed.kind values, for the UI, the API's status codes and the metrics' labels.
FAILURE_KINDS = (
    "invalid_input",
    "busy",            # the studio's line (or this person's share of it) is full
    "unreachable",
    "rejected",
    "missing_models",
    "out_of_memory",
    "execution",
    "interrupted",
    "timeout",
    "lost",
)


@dataclass(frozen=True)
class Queued:
    """ComfyUI accepted the prompt; `position` prompts run before it (0 = next or running).
    Sent again when the position changes, and for the second pass of a region edit. While
    the job still waits in the studio's own line, `prompt_id` and `server` are "". `server` is
    the label of the ComfyUI server it was sent to."""

    position: int
    prompt_id: str
    server: str = ""


@dataclass(frozen=True)
class Started:
    """ComfyUI began this job; `loading_models` when its diffusion model differs from what the
    studio believes this server holds (the last job that got past its model loaders; nothing
    after a restart or a reconnect): expect 5-10 s of model loading. `server`: where it runs."""

    loading_models: bool
    server: str = ""


@dataclass(frozen=True)
class ModelsLoaded:
    """The job got past its model loaders (ComfyUI ran them, or had them cached): ComfyUI now
    holds its models. `family` and `model` name them for people; `swapped` when that replaced
    what the studio believed was loaded (or nothing was): the swaps metric counts these, so a
    job that fails before its loaders counts no swap and changes nothing. `server`: which
    ComfyUI server now holds them."""

    family: str
    model: str | None
    swapped: bool
    server: str = ""


@dataclass(frozen=True)
class Moved:
    """The job left a server that failed under it (unreachable, restarted, or out of memory
    where another has more free) and goes to another, once: `note` says so in a sentence
    (also in Finished.notes). Its inputs are uploaded again there; nothing of the first
    attempt is kept, and the studio cancels it there if that server comes back with it."""

    from_server: str
    to_server: str
    reason: str        # "unreachable" | "lost" | "out_of_memory" (the first attempt's kind)
    note: str


@dataclass(frozen=True)
class Progress:
    """`fraction` 0..1 weighs nodes 20% and sampler steps 80%; `step`/`total` are the running
    sampler's (None outside samplers); `eta_s` from the step rate (None until known)."""

    fraction: float
    step: int | None = None
    total: int | None = None
    node_label: str = ""
    eta_s: float | None = None


@dataclass(frozen=True)
class Preview:
    image: Image.Image


@dataclass(frozen=True)
class Finished:
    """The result. `timings` has upload_s, studio_wait_s, queued_s, run_s, total_s (seconds;
    oom_retry_after_s after an out-of-memory retry); `workflow` is the exact graph submitted
    (ComfyUI's JSON); `extras` e.g. {"mask": the mask used}; `models_loaded` when the job had
    to load its diffusion model first; `notes` sentences for the person (inputs scaled, pads
    adjusted, retried at a lower resolution, moved to another server, ...); `server` the
    label of the ComfyUI server that made it."""

    images: list[Image.Image]
    seed: int
    timings: dict[str, float]
    workflow: dict[str, Any]
    mode: str
    extras: dict[str, Image.Image] = field(default_factory=dict)
    models_loaded: bool = False
    notes: tuple[str, ...] = ()
    prompt_id: str | None = None
    server: str = ""
    # The out-of-memory steps taken before this result (STUDIO_OOM_RETRY), in order:
    # "move", "free", "gguf", "smaller" (metrics counts them; `notes` says them).
    oom_steps: tuple[str, ...] = ()


@dataclass(frozen=True)
class Failed:
    """`message` is for people (what happened, what to do); `detail` for logs; `kind` one of
    FAILURE_KINDS; `field` the request field at fault for invalid_input; `server` the ComfyUI
    server it failed on ("" when it failed before reaching one)."""

    message: str
    detail: str = ""
    kind: str = "execution"
    field: str | None = None
    server: str = ""
    oom_steps: tuple[str, ...] = ()     # as Finished.oom_steps: tried before failing


JobEvent = Queued | Started | Progress | Preview | Finished | Failed | ModelsLoaded | Moved
# A job's events; closing the stream early (aclose) cancels the job in ComfyUI.
JobStream = AsyncGenerator[JobEvent, None]
# How a job ended for an observer: its last event, or "abandoned" (closed or crashed first).
Outcome = Literal["finished", "failed", "abandoned"]


@dataclass(frozen=True)
class JobInfo:
    """One job as observers see it: its mode, the surface that started it, and when
    (`time.monotonic()`)."""

    mode: str
    surface: Surface
    started: float


class JobObserver(Protocol):
    """Told about every job the studio runs, whichever surface started it (metrics is one).
    Called inline on the job's task: keep it quick, never raise (errors are logged)."""

    def job_started(self, job: JobInfo) -> None: ...

    def job_event(self, job: JobInfo, event: JobEvent) -> None: ...

    def job_ended(self, job: JobInfo, outcome: Outcome) -> None: ...

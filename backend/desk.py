"""The desk: every surface hands its jobs in here, for a person, and follows them from here.

`submit(request, who)` admits the job at once (InvalidRequest or QueueFull reach the caller
before anything waits) and runs it on its own task, so a job no longer depends on the page or
HTTP request that started it: a second job in the same tab, a reload or a switch of tabs loses
nothing. Each finished result is saved once to the library (`Saved` follows `Finished`). A
person's jobs are listed (the queue strip, the sidebar) and stopped by id.

Followers (`Job.events()`) get every lasting event (Started, Finished, Failed, Saved) and the
latest of the passing ones (Queued, Progress, Preview): a slow page skips stale progress, it
never blocks the job. A finished job keeps its full events for `KEEP_RESULT_S` (its pictures
may be large), then only what the queue strip needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import itertools
import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from PIL import Image

from backend.events import (
    Failed,
    Finished,
    JobEvent,
    ModelsLoaded,
    Moved,
    Preview,
    Progress,
    Queued,
    Started,
    Surface,
)
from backend.jobs import Admission, Studio
from backend.library import InputFile, Library, LibraryItem, LibrarySaveError, NewItem
from backend.modes import InputKind
from backend.requests import RequestBase

log = logging.getLogger(__name__)

KEEP_RESULT_S = 120.0        # a finished job's pictures stay in memory this long for followers
KEEP_FINISHED = 24           # finished jobs listed per person (the queue strip's "done")
LABEL_CHARS = 60


@dataclass(frozen=True)
class Saved:
    """After Finished: the library items of the result's images (same order), or a sentence
    saying why it was not kept (the result itself is still in Finished)."""

    items: tuple[LibraryItem, ...]
    warning: str | None = None


DeskEvent = JobEvent | Saved


class JobState(Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def active(self) -> bool:
        return self in (JobState.WAITING, JobState.RUNNING)


@dataclass(frozen=True)
class Who:
    """Whom a job is for: `person` is the unit of fairness and queue caps (a user, an API key,
    a browser or a page session); `owner` whose library keeps the result."""

    person: str
    owner: str
    surface: Surface


@dataclass(frozen=True)
class Ticket:
    id: str
    who: Who
    mode: str
    label: str                    # the prompt's first words, for the queue strip
    created: float                # time.time()
    parent_id: str | None = None  # the library item it was made from
    batch: str | None = None      # jobs asked for together share this
    index: int = 0                # its place in the batch


@dataclass(frozen=True)
class JobView:
    """One job as a list shows it."""

    ticket: Ticket
    state: JobState
    position: int | None          # jobs ahead of it while it waits
    fraction: float               # progress while it runs (0..1)
    message: str                  # why it failed or stopped ("" otherwise)
    item_ids: tuple[str, ...]     # its library items once saved
    server: str | None = None     # the label of the ComfyUI server it runs (or ran) on


class StopResult(Enum):
    STOPPED_WAITING = "Stopped while it waited in line: it never reached ComfyUI."
    STOPPED_RUNNING = "Stopped: ComfyUI was told to interrupt it."
    ALREADY_DONE = "Nothing to stop: that job had already finished."
    NOT_FOUND = "Nothing to stop: no such job is running."


class Job:
    def __init__(self, ticket: Ticket, admission: Admission) -> None:
        self.ticket = ticket
        self.state = JobState.WAITING
        self._admission = admission
        self._lasting: list[DeskEvent] = []
        self._latest: dict[type, JobEvent] = {}      # Queued, Progress, Preview: newest only
        self._versions: dict[type, int] = {}
        self._version = 0
        self._wake: asyncio.Future[None] | None = None
        self._message = ""
        self._items: tuple[str, ...] = ()
        self._fraction = 0.0
        self._server: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._saving = False          # the picture exists: stopping now would only lose it
        self._sampled = False         # a sampler reported steps
        self._previewed = False       # ComfyUI sent a preview picture
        self.ended_at: float | None = None

    # -- what others read -----------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.ticket.id

    @property
    def done(self) -> bool:
        return not self.state.active

    def view(self) -> JobView:
        position = self._admission.turn.position() if self.state is JobState.WAITING else None
        return JobView(self.ticket, self.state, position, self._fraction, self._message,
                       self._items, self.server)

    @property
    def server(self) -> str | None:
        """The label of the ComfyUI server it runs (or ran) on, from its events (a moved job
        names the second); before any, where its turn was released; None before that."""
        return self._server or self._admission.turn.server

    async def events(self) -> AsyncIterator[DeskEvent]:
        """Everything so far (lasting events, then the newest passing ones), then live, until
        the job has ended and everything was handed over."""
        index = 0
        seen: dict[type, int] = {}
        while True:
            version = self._version
            while index < len(self._lasting):
                event = self._lasting[index]
                index += 1
                yield event
            if self.done and index == len(self._lasting):
                return
            for kind, event in list(self._latest.items()):
                if seen.get(kind, -1) < self._versions[kind]:
                    seen[kind] = self._versions[kind]
                    yield event
            if version == self._version and not (self.done and index == len(self._lasting)):
                await self._changed()

    async def outcome(self) -> Finished | Failed:
        """The job's Finished or Failed (for callers that want only the end)."""
        last: Finished | Failed | None = None
        async for event in self.events():
            if isinstance(event, Finished | Failed):
                last = event
        assert last is not None, "a job always ends with Finished or Failed"
        return last

    # -- the desk drives these ------------------------------------------------------------
    def _changed(self) -> asyncio.Future[None]:
        if self._wake is None or self._wake.done():
            self._wake = asyncio.get_running_loop().create_future()
        return self._wake

    def _push(self, event: DeskEvent) -> None:
        if isinstance(event, Moved):
            self._server = event.to_server
        elif isinstance(event, Queued | Started | ModelsLoaded | Finished | Failed) and (
            event.server
        ):
            self._server = event.server
        if isinstance(event, Queued | Progress | Preview):
            kind = type(event)
            self._latest[kind] = event
            self._versions[kind] = self._version + 1
            if isinstance(event, Progress):
                self._fraction = event.fraction
                self._sampled = self._sampled or bool(event.total)
            elif isinstance(event, Preview):
                self._previewed = True
        else:
            self._lasting.append(event)
            if isinstance(event, Started | Finished | Failed):
                self._latest.pop(Queued, None)    # a new phase: the old place is stale
        if isinstance(event, Started | Progress | Preview) or (
            isinstance(event, Queued) and event.prompt_id
        ):
            self.state = JobState.RUNNING if not self.done else self.state
        self._version += 1
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def _end(self, state: JobState, message: str = "") -> None:
        self.state = state
        self._message = message
        self.ended_at = time.monotonic()
        self._latest.pop(Queued, None)
        self._push_wake()

    def _push_wake(self) -> None:
        self._version += 1
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def _lighten(self) -> None:
        """Drop the pictures once followers had their time: keep what the list needs."""
        self._latest.pop(Preview, None)
        self._lasting = [e for e in self._lasting if not isinstance(e, Finished)]


class Desk:
    """One per process. Single event loop: jobs, lists and followers change between awaits."""

    def __init__(self, studio: Studio, library: Library | None) -> None:
        self.studio = studio
        self.library = library
        self._jobs: dict[str, Job] = {}                 # every job still listed, by id
        self._by_person: dict[str, list[str]] = {}      # job ids, oldest first
        # Whether ComfyUI sends previews (`--preview-method`), learned from each job that
        # sampled; None until one has.
        self.previews: bool | None = None

    # -- handing in ---------------------------------------------------------------------------
    def submit(
        self,
        request: RequestBase,
        who: Who,
        *,
        parent_id: str | None = None,
        label: str | None = None,
        save: bool = True,
    ) -> Job:
        """Admit and start one job (raises InvalidRequest or QueueFull before anything runs)."""
        return self.submit_many([request], who, parent_id=parent_id, label=label, save=save)[0]

    def submit_many(
        self,
        requests: Sequence[RequestBase],
        who: Who,
        *,
        parent_id: str | None = None,
        label: str | None = None,
        save: bool = True,
    ) -> list[Job]:
        """A batch: all admitted or none (a refusal leaves no job behind)."""
        admissions: list[Admission] = []
        try:
            for request in requests:
                admissions.append(self.studio.admit(request, owner=who.person))
        except BaseException:
            for admission in admissions:
                admission.turn.leave()
            raise
        batch = secrets.token_hex(4) if len(requests) > 1 else None
        jobs = []
        for index, admission in enumerate(admissions):
            request = admission.request
            ticket = Ticket(
                id=secrets.token_urlsafe(9), who=who, mode=request.mode,
                label=_label(label if label is not None else _prompt_of(request)),
                created=time.time(), parent_id=parent_id, batch=batch, index=index,
            )
            job = Job(ticket, admission)
            self._jobs[job.id] = job
            self._by_person.setdefault(who.person, []).append(job.id)
            job._task = asyncio.get_running_loop().create_task(
                self._run(job, save), name=f"job-{ticket.mode}-{job.id}"
            )
            jobs.append(job)
        self._forget_old(who.person)
        return jobs

    # -- listing and stopping ------------------------------------------------------------------
    def find(self, person: str, job_id: str) -> Job | None:
        job = self._jobs.get(job_id)
        return job if job is not None and job.ticket.who.person == person else None

    def jobs(self, person: str) -> list[Job]:
        """This person's listed jobs, oldest first."""
        return [self._jobs[i] for i in self._by_person.get(person, ()) if i in self._jobs]

    def views(self, person: str) -> list[JobView]:
        return [job.view() for job in self.jobs(person)]

    def active(self, person: str, mode: str | None = None) -> list[Job]:
        return [
            j for j in self.jobs(person)
            if j.state.active and (mode is None or j.ticket.mode == mode)
        ]

    def stop(self, person: str, job_id: str) -> StopResult:
        """Stop one of this person's jobs; says what actually happened."""
        job = self.find(person, job_id)
        if job is None:
            return StopResult.NOT_FOUND
        if job.done or job._saving:
            return StopResult.ALREADY_DONE
        result = (
            StopResult.STOPPED_WAITING if job.state is JobState.WAITING
            else StopResult.STOPPED_RUNNING
        )
        job._push(Failed(result.value, "", "interrupted"))   # followers learn at once
        job._end(JobState.STOPPED, result.value)
        assert job._task is not None
        job._task.cancel()                           # closing studio.run interrupts ComfyUI
        return result

    def stop_all(self, person: str, mode: str | None = None) -> int:
        jobs = self.active(person, mode)
        for job in jobs:
            self.stop(person, job.id)
        return len(jobs)

    async def aclose(self) -> None:
        tasks = [j._task for j in self._jobs.values() if j._task is not None and not j.done]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    # -- one job ------------------------------------------------------------------------------
    async def _run(self, job: Job, save: bool) -> None:
        who = job.ticket.who
        stream = self.studio.run(job._admission, surface=who.surface, owner=who.person)
        try:
            async for event in stream:
                if job.state is JobState.STOPPED:
                    break
                job._push(event)
                if isinstance(event, Finished):
                    if job._sampled:
                        self.previews = job._previewed
                    job._saving = True
                    saved = await self._save(job, event) if save else Saved(())
                    job._items = tuple(item.id for item in saved.items)
                    job._push(saved)
                    job._end(JobState.FINISHED)
                elif isinstance(event, Failed):
                    job._end(JobState.FAILED, event.message)
        except asyncio.CancelledError:
            pass   # stop(): the state and message are set; closing the stream interrupts
        except Exception as exc:   # a bug of ours: the follower gets a sentence, the log the trace
            log.exception("%s job %s failed inside the studio", job.ticket.mode, job.id)
            failed = Failed(
                f"The studio hit an internal error ({type(exc).__name__}); the server log has "
                "details.", repr(exc), "execution",
            )
            job._push(failed)
            job._end(JobState.FAILED, failed.message)
        finally:
            await stream.aclose()
            if job.state.active:        # the stream ended without an outcome
                job._push(Failed("The job ended without a result.", "", "execution"))
                job._end(JobState.FAILED, "The job ended without a result.")
            job._push_wake()
            asyncio.get_running_loop().call_later(KEEP_RESULT_S, job._lighten)

    async def _save(self, job: Job, finished: Finished) -> Saved:
        if self.library is None:
            return Saved(())
        request = job._admission.request
        who = job.ticket.who
        params = _parameters(request, finished)
        inputs = await asyncio.to_thread(_inputs_as_sent, request, job._admission)
        items = []
        try:
            for image in finished.images:
                items.append(await self.library.save(NewItem(
                    owner=who.owner, surface=who.surface, mode=finished.mode, image=image,
                    params={**params, "width": image.width, "height": image.height},
                    workflow=finished.workflow, inputs=inputs, extras=finished.extras,
                    timings=finished.timings, parent_id=job.ticket.parent_id,
                    notes=finished.notes,
                )))
        except LibrarySaveError as exc:
            log.warning("result of job %s not saved: %s (%s)", job.id, exc.message, exc.detail)
            return Saved(tuple(items), exc.message)
        return Saved(tuple(items))

    def _forget_old(self, person: str) -> None:
        ids = self._by_person.get(person, [])
        finished = [i for i in ids if i in self._jobs and self._jobs[i].done]
        for job_id in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[job_id]
        self._by_person[person] = [i for i in ids if i in self._jobs]


# --- what a request keeps in the library -----------------------------------------------------

_SCALARS = (str, int, float, bool, type(None))


def _parameters(request: RequestBase, finished: Finished) -> dict[str, str | int | float | bool | None]:
    """The request's plain fields (prompt, knobs, variant…), the seed that ran and the mode;
    pictures are kept as files, not parameters."""
    params: dict[str, str | int | float | bool | None] = {
        f.name: value
        for f in dataclasses.fields(request)
        if isinstance(value := getattr(request, f.name), _SCALARS)
    }
    params.update(mode=finished.mode, seed=finished.seed)
    return params


def _inputs_as_sent(request: RequestBase, admission: Admission) -> tuple[InputFile, ...]:
    """The request's pictures as they were sent: bytes unchanged, images (a painted mask) as
    PNG. Roles are the declared input names (image, images1…, mask)."""
    out: list[InputFile] = []
    for spec_input in admission.spec.inputs:
        if spec_input.kind not in (InputKind.IMAGE, InputKind.IMAGES, InputKind.MASK):
            continue
        value = getattr(request, spec_input.name, None)
        values: Iterable[object] = (
            value if spec_input.kind is InputKind.IMAGES and isinstance(value, tuple | list)
            else (value,)
        )
        for number, item in zip(itertools.count(1), values, strict=False):
            role = spec_input.name if spec_input.kind is not InputKind.IMAGES else (
                f"{spec_input.name}{number}"
            )
            if isinstance(item, bytes | bytearray) and item:
                out.append(InputFile(role, bytes(item), _suffix(bytes(item))))
            elif isinstance(item, Image.Image):
                buffer = io.BytesIO()
                item.save(buffer, format="PNG", compress_level=4)
                out.append(InputFile(role, buffer.getvalue(), ".png"))
    return tuple(out)


def _suffix(data: bytes) -> str:
    for magic, suffix in ((b"\x89PNG", ".png"), (b"\xff\xd8", ".jpg"), (b"GIF8", ".gif"),
                          (b"RIFF", ".webp"), (b"BM", ".bmp")):
        if data.startswith(magic):
            return suffix
    return ".bin"


def _prompt_of(request: RequestBase) -> str:
    for name in ("prompt", "region"):
        value = getattr(request, name, None)
        if isinstance(value, str) and value.strip():
            return value
    return ""


def _label(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"

"""Studio.run against a scripted client: event order, failure mapping, retry, cancellation,
and the region edit's two passes. (The real protocol runs in tests/integration/test_modes.py.)"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from PIL import Image

from backend.comfy import (
    ComfyExecutionFailed,
    ComfyInterrupted,
    ComfyPromptLost,
    ComfyRejected,
    ComfyTimeout,
    ComfyUnreachable,
    Executing,
    ExecutionCached,
    ExecutionStart,
    ImageRef,
    NodeProblem,
    PreviewImage,
    ProgressMessage,
    PromptDone,
    PromptQueued,
)
from backend.events import JobInfo
from backend.failures import OOM_REMEDIES
from backend.jobs import Failed, Finished, Preview, Progress, Queued, Started, Studio
from backend.modes.edit import EditRequest
from backend.modes.generate import GenerateRequest
from backend.modes.region_edit import RegionEditRequest
from backend.progress import ProgressTracker
from backend.settings import Settings
from backend.workflows import TemplateLibrary

SETTINGS = Settings()


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class ScriptedClient:
    """Just enough of ComfyClient: uploads, view, and an execute() that plays a script."""

    def __init__(self, *, fail: list[Exception | None] | None = None, empty_mask: bool = False):
        self.files: dict[str, bytes] = {}
        self.fail = list(fail or [])
        self.empty_mask = empty_mask
        self.calls: list[tuple[dict[str, Any], list[str] | None]] = []
        self.closed = 0
        self.hold: asyncio.Event | None = None  # set → execute waits here after Started
        self.epoch = 1                # the websocket's (re)connects, as ComfyClient counts them
        self.server_generation = 0    # ComfyUI restarts seen
        self.preview: bytes | None = None       # the sampler's preview frame (default: gray)

    async def upload_image(self, data: bytes, **_: Any) -> ImageRef:
        name = hashlib.sha256(data).hexdigest()[:24] + ".png"
        self.files[name] = data
        return ImageRef(name, "banana", "input")

    async def view(self, ref: ImageRef) -> bytes:
        return self.files[ref.filename]

    def _work_size(self, graph: dict[str, Any]) -> tuple[int, int]:
        for node in graph.values():
            inputs = node["inputs"]
            if node["class_type"] == "EmptySD3LatentImage":
                return inputs["width"], inputs["height"]
        for node in graph.values():
            if node["class_type"] == "LoadImage" and "#image" in node["_meta"]["title"]:
                name = node["inputs"]["image"].split("/")[-1]
                return Image.open(io.BytesIO(self.files[name])).size
        raise AssertionError("no size in graph")

    async def execute(
        self, graph: dict[str, Any], *, timeout: float | None = None,  # noqa: ASYNC109
        partial_targets: list[str] | None = None,
    ) -> AsyncIterator[Any]:
        self.calls.append((graph, partial_targets))
        failure = self.fail.pop(0) if self.fail else None
        pid = f"p{len(self.calls)}"
        try:
            yield PromptQueued(pid, len(self.calls), 2)
            yield ExecutionStart(pid)
            yield ExecutionCached(pid, ())
            if self.hold is not None:
                await self.hold.wait()
            outputs: dict[str, Any] = {"999": {"images": [{"filename": "decoy.png"}]}}
            self.files["decoy.png"] = png(Image.new("RGB", (8, 8)))
            for node_id, node in graph.items():
                yield Executing(pid, node_id)
                if "Sampler" in node["class_type"]:
                    if failure is not None:
                        raise failure
                    for step in range(1, 4):
                        yield ProgressMessage(pid, node_id, step, 3)
                    frame = self.preview or png(Image.new("RGB", (16, 16), "gray"))
                    yield PreviewImage(frame, "image/png", pid)
                if node["class_type"] == "SaveImage" and (
                    partial_targets is None or node_id in partial_targets
                ):
                    prefix = node["inputs"]["filename_prefix"]
                    size = self._work_size(graph)
                    if prefix.endswith("-mask"):
                        image = Image.new("RGB", size)
                        if not self.empty_mask:
                            image.paste((255, 255, 255), (4, 4, 40, 40))
                    else:
                        image = Image.new("RGB", size, (200, 10, 10))
                    name = prefix.replace("/", "_") + ".png"
                    self.files[name] = png(image)
                    outputs[node_id] = {"images": [{"filename": name, "subfolder": "", "type": "output"}]}
            yield PromptDone(pid, outputs)
        finally:
            self.closed += 1


def studio(client: ScriptedClient, **overrides: Any) -> Studio:
    settings = Settings(**overrides) if overrides else SETTINGS
    return Studio(client, settings, TemplateLibrary(settings.workflows_dir))


async def collect(events: AsyncIterator[Any]) -> list[Any]:
    return [event async for event in events]


async def test_a_truncated_preview_is_skipped_not_handed_on() -> None:
    """Only the header was read, so a cut-off preview passed as an Image and failed later,
    in whoever drew it (the UI's yield, which ends the job)."""
    client = ScriptedClient()
    noise = Image.effect_noise((64, 64), 64).convert("RGB")
    client.preview = png(noise)[:200]
    events = await collect(studio(client).run(GenerateRequest("a cat", 512, 384, seed=7)))
    assert isinstance(events[-1], Finished)
    for event in events:
        if isinstance(event, Preview):
            event.image.load()     # raises OSError ("image file is truncated") if handed on


async def test_a_damaged_result_is_a_failed_event_not_an_exception() -> None:
    """The file is checked whole and decoded when fetched: a cut-off PNG from ComfyUI must end
    the job with Failed, not raise later in whoever draws it."""

    class DamagingClient(ScriptedClient):
        async def view(self, ref: ImageRef) -> bytes:
            data = await super().view(ref)
            return data if ref.type == "input" else data[: len(data) // 2]

    events = await collect(studio(DamagingClient()).run(GenerateRequest("a cat", 512, 384)))
    assert isinstance(events[-1], Failed), events[-1]
    assert "not an image the studio can read" in events[-1].message


async def test_generate_event_order_and_result() -> None:
    client = ScriptedClient()
    events = await collect(studio(client).run(GenerateRequest("a cat", 512, 384, seed=7)))
    kinds = [type(e) for e in events]
    assert kinds[0] is Queued and kinds[1] is Started and kinds[-1] is Finished
    assert Progress in kinds and Preview in kinds
    assert kinds.index(Preview) < len(kinds) - 1
    assert events[0].position == 2
    done = events[-1]
    assert done.seed == 7 and done.mode == "generate"
    assert [i.size for i in done.images] == [(512, 384)]  # from #output, not the decoy
    assert done.workflow is client.calls[0][0]
    assert set(done.timings) >= {"upload_s", "queued_s", "run_s", "total_s"}
    fractions = [e.fraction for e in events if isinstance(e, Progress)]
    assert fractions == sorted(fractions) and 0 < fractions[-1] <= 1
    steps = [(e.step, e.total) for e in events if isinstance(e, Progress) and e.step]
    assert steps[-1] == (3, 3)
    labels = {e.node_label for e in events if isinstance(e, Progress)}
    assert "Sampler" in labels  # the title without its #role tag


async def test_loading_models_tracks_the_diffusion_model() -> None:
    s = studio(ScriptedClient())

    async def started(request: Any) -> bool:
        return next(e for e in await collect(s.run(request)) if isinstance(e, Started)).loading_models

    assert await started(GenerateRequest("a", 256, 256)) is True
    assert await started(GenerateRequest("b", 256, 256)) is False
    assert s.last_mode == "generate" and s.loaded_file == SETTINGS.models.generate_unet
    assert await started(EditRequest(Image.new("RGB", (64, 64)), "c")) is True
    assert s.loaded_file == SETTINGS.models.edit_unet


async def test_invalid_request_never_reaches_comfyui() -> None:
    client = ScriptedClient()
    events = await collect(studio(client).run(GenerateRequest("x", width=1000)))
    assert events == [
        Failed("Width 1000 is not a multiple of 16 — try 992 or 1008.", "", "invalid_input", "width")
    ]
    assert client.calls == []


async def test_unknown_variant_is_rejected_naming_the_template() -> None:
    events = await collect(studio(ScriptedClient()).run(GenerateRequest("x", variant="nope")))
    assert events[-1].kind == "rejected" and "generate.nope.json" in events[-1].message


def rejected_model() -> ComfyRejected:
    problem = NodeProblem(
        "1", "UNETLoader", "unet_name", "value_not_in_list", "Value not in list",
        received=SETTINGS.models.generate_unet, choices=("other.safetensors",),
    )
    return ComfyRejected("prompt_outputs_failed_validation", [problem])


@pytest.mark.parametrize(
    ("error", "kind", "needles"),
    [
        (ComfyExecutionFailed("7", "KSampler", "torch.OutOfMemoryError", "CUDA out of memory"),
         "out_of_memory", ["node 7 'Sampler' (KSampler)", "at 512×512"]),
        (rejected_model(), "missing_models",
         ["models/diffusion_models/", SETTINGS.models.generate_unet, "STUDIO_MODEL_GENERATE_UNET"]),
        (ComfyRejected("invalid_prompt", error_message="Cannot execute because node "
                       "LanPaint_KSampler does not exist.", error_details="Node ID '#15'"),
         "missing_models", ["LanPaint_KSampler", "LanPaint", "generate.json"]),   # a pack
        (ComfyRejected("invalid_prompt", error_message="Some other refusal."),
         "rejected", ["Some other refusal", "generate.json"]),
        (ComfyExecutionFailed("7", "KSampler", "RuntimeError", "boom"), "execution", ["boom"]),
        (ComfyInterrupted("p1"), "interrupted", ["Stopped."]),
        (ComfyTimeout("p1", 5.0), "timeout", ["5 s"]),
        (ComfyPromptLost("p1"), "lost", ["ComfyUI restarted and lost the queue; run it again"]),
    ],
)
async def test_comfy_errors_become_failed_events(
    error: Exception, kind: str, needles: list[str]
) -> None:
    events = await collect(studio(ScriptedClient(fail=[error])).run(GenerateRequest("x", 512, 512)))
    failed = events[-1]
    assert isinstance(failed, Failed) and failed.kind == kind, failed
    for needle in needles:
        assert needle in failed.message


async def test_oom_message_lists_the_remedies_in_order() -> None:
    error = ComfyExecutionFailed("7", "KSampler", "torch.OutOfMemoryError", "CUDA out of memory")
    failed = (await collect(studio(ScriptedClient(fail=[error])).run(GenerateRequest("x"))))[-1]
    positions = [failed.message.index(remedy) for remedy in OOM_REMEDIES]
    assert positions == sorted(positions)
    assert "1024×1024 → 768×768" in failed.message


async def test_unreachable_during_upload() -> None:
    class Down(ScriptedClient):
        async def upload_image(self, data: bytes, **_: Any) -> ImageRef:
            raise ComfyUnreachable("http://127.0.0.1:9", "connection refused")

    events = await collect(studio(Down()).run(EditRequest(Image.new("RGB", (64, 64)), "x")))
    assert events == [events[-1]] and events[-1].kind == "unreachable"


async def test_oom_retry_runs_once_at_a_lower_resolution() -> None:
    oom = ComfyExecutionFailed("7", "KSampler", "torch.OutOfMemoryError", "CUDA out of memory")
    client = ScriptedClient(fail=[oom])
    events = await collect(studio(client, oom_retry=True).run(GenerateRequest("x", seed=3)))
    done = events[-1]
    assert isinstance(done, Finished), done
    assert done.images[0].size == (880, 880) and done.seed == 3
    assert any("retried once at 880×880" in line for line in done.notes)
    assert "oom_retry_after_s" in done.timings
    assert len(client.calls) == 2
    assert not any(isinstance(e, Failed) for e in events)


async def test_oom_without_retry_setting_fails() -> None:
    oom = ComfyExecutionFailed("7", "KSampler", "torch.OutOfMemoryError", "CUDA out of memory")
    client = ScriptedClient(fail=[oom])
    events = await collect(studio(client).run(GenerateRequest("x")))
    assert events[-1].kind == "out_of_memory" and len(client.calls) == 1


async def test_closing_the_iterator_closes_execute() -> None:
    client = ScriptedClient()
    client.hold = asyncio.Event()
    events = studio(client).run(GenerateRequest("x", 256, 256))
    async for event in events:
        if isinstance(event, Started):
            break
    await events.aclose()
    assert client.closed == 1


async def test_cancelling_the_consumer_closes_execute() -> None:
    client = ScriptedClient()
    client.hold = asyncio.Event()
    seen = asyncio.Event()

    async def consume() -> None:
        async for event in studio(client).run(GenerateRequest("x", 256, 256)):
            if isinstance(event, Started):
                seen.set()

    task = asyncio.create_task(consume())
    await seen.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert client.closed == 1


async def test_region_edit_checks_the_mask_first_then_runs_the_same_graph() -> None:
    client = ScriptedClient()
    events = await collect(studio(client).run(
        RegionEditRequest(Image.new("RGB", (128, 96), "blue"), "the car", "make it red")))
    done = events[-1]
    assert isinstance(done, Finished), done
    (first, targets), (second, none) = client.calls
    assert first is second and none is None
    mask_node = next(i for i, n in first.items() if "#mask_output" in n["_meta"]["title"])
    assert targets == [mask_node]
    assert done.extras["mask"].size == (128, 96)
    assert [type(e) for e in events].count(Started) == 1


async def test_region_edit_with_nothing_matched_is_invalid_input() -> None:
    client = ScriptedClient(empty_mask=True)
    events = await collect(studio(client).run(
        RegionEditRequest(Image.new("RGB", (64, 64)), "the red car", "x")))
    failed = events[-1]
    assert failed.kind == "invalid_input" and failed.field == "region"
    assert failed.message == "Nothing matched 'the red car' — try other words."
    assert len(client.calls) == 1


# --- progress weighting ----------------------------------------------------------------------


def test_progress_weights_nodes_20_and_steps_80() -> None:
    graph = {
        "1": {"class_type": "Loader", "inputs": {}},
        "2": {"class_type": "KSampler", "inputs": {"steps": 10}, "_meta": {"title": "Sampler #sampler"}},
        "3": {"class_type": "SaveImage", "inputs": {}},
    }
    now = [0.0]
    tracker = ProgressTracker(graph, clock=lambda: now[0])
    assert tracker.executing("1").fraction == 0
    p = tracker.executing("2")
    assert p.fraction == pytest.approx(0.2 / 3) and p.node_label == "Sampler"
    tracker.progress("2", 1, 10)
    now[0] = 2.0
    p = tracker.progress("2", 5, 10)
    assert p.fraction == pytest.approx(0.2 / 3 + 0.8 * 0.5)
    assert (p.step, p.total) == (5, 10)
    assert p.eta_s == pytest.approx(2.5)  # 4 steps in 2 s, 5 to go
    assert tracker.executing("3").fraction == pytest.approx(0.2 * 2 / 3 + 0.8)


def test_progress_without_sampler_counts_nodes_and_cache() -> None:
    graph = {str(i): {"class_type": "X", "inputs": {}} for i in range(4)}
    tracker = ProgressTracker(graph)
    assert tracker.cached(["0", "1"]).fraction == 0.5
    assert tracker.executing("2").fraction == 0.5
    assert tracker.executing("3").fraction == 0.75



# --- observers: every job, whichever surface -----------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.log: list[tuple[str, str, str, str]] = []

    def job_started(self, job: JobInfo) -> None:
        self.log.append(("started", job.mode, job.surface, ""))

    def job_event(self, job: JobInfo, event: Any) -> None:
        self.log.append(("event", job.mode, job.surface, type(event).__name__))

    def job_ended(self, job: JobInfo, outcome: str) -> None:
        self.log.append(("ended", job.mode, job.surface, outcome))


class Broken:
    def job_started(self, job: JobInfo) -> None:
        raise RuntimeError("observer bug")

    job_event = job_ended = job_started  # type: ignore[assignment]


async def test_observers_see_every_job_with_its_surface() -> None:
    recorder = Recorder()
    s = Studio(ScriptedClient(), SETTINGS, TemplateLibrary(SETTINGS.workflows_dir),
               observers=[Broken(), recorder])   # a broken observer does not break the job
    events = await collect(s.run(GenerateRequest("a cat", 256, 256, seed=1), surface="cli"))
    assert isinstance(events[-1], Finished)
    assert recorder.log[0] == ("started", "generate", "cli", "")
    assert recorder.log[-1] == ("ended", "generate", "cli", "finished")
    assert [e[3] for e in recorder.log[1:-1]] == [type(e).__name__ for e in events]


async def test_a_job_closed_early_ends_abandoned() -> None:
    recorder = Recorder()
    s = Studio(ScriptedClient(), SETTINGS, TemplateLibrary(SETTINGS.workflows_dir),
               observers=[recorder])
    events = s.run(GenerateRequest("a cat", 256, 256, seed=1))
    await anext(events)
    await events.aclose()
    assert recorder.log[-1] == ("ended", "generate", "ui", "abandoned")
    invalid = await collect(s.run(GenerateRequest("", 256, 256)))
    assert isinstance(invalid[-1], Failed)
    assert recorder.log[-1] == ("ended", "generate", "ui", "failed")


async def test_a_broken_character_is_invalid_input_not_a_crash() -> None:
    """What the UI and the API both get from studio.run (before: UnicodeEncodeError, shown
    as "internal error" and counted as a cancelled job)."""
    outcomes: list[str] = []

    class Observer:
        def job_started(self, job: JobInfo) -> None: ...

        def job_event(self, job: JobInfo, event: Any) -> None: ...

        def job_ended(self, job: JobInfo, outcome: str) -> None:
            outcomes.append(outcome)

    client = ScriptedClient()
    s = Studio(client, SETTINGS, TemplateLibrary(SETTINGS.workflows_dir), observers=[Observer()])
    events = await collect(s.run(GenerateRequest("a cat \ud83c", 256, 256)))
    assert events == [Failed(
        "The prompt contains a broken character (an unpaired surrogate); remove it.", "",
        "invalid_input", "prompt")]
    assert outcomes == ["failed"] and not client.calls

"""Fault matrix: every way ComfyUI misbehaves, through `studio.run` and through the surfaces
(API, UI) where they matter. Each row ends in a result or in a Failed of the right kind whose
message is a sentence a person can act on, within a bound; none leaves a prompt behind.

The client timings are set small (UNREACHABLE_AFTER_S etc.) so the bounds are seconds; in
production they are the client's defaults (60 s unreachable, 5 s stall poll).
docs/robustness.md has the same rows as a table, with the bounds measured here.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from backend.comfy import ComfyClient, ExecutionSuccess
from backend.failures import LOST, OOM_REMEDIES
from backend.jobs import Failed, Finished, Progress, Studio
from backend.modes.generate import GenerateRequest
from backend.modes.remove_background import RemoveBackgroundRequest
from backend.settings import Settings
from backend.workflows import TemplateLibrary
from tests.fake_comfy import FakeComfy
from tests.matrix import inputs
from tests.matrix.conftest import CLIENT_TIMINGS, MatrixStudio
from tests.matrix.surfaces import UISession, assert_actionable, comfy_addresses

pytestmark = pytest.mark.timeout(60)
UNREACHABLE_AFTER_S = 1.0
STEP_DELAY_S = 0.05          # 16 steps: 0.8 s of sampling to break in on
STEPS = 16
HANG_GUARD_S = 30            # only so a regression fails instead of hanging


_seeds = itertools.count(1000)


def generate() -> GenerateRequest:
    # a new seed each time: ComfyUI's cache must not finish a row before its fault bites
    return GenerateRequest("a lighthouse at dusk", 256, 256, seed=next(_seeds), steps=STEPS)


def remove_background() -> RemoveBackgroundRequest:
    return RemoveBackgroundRequest(inputs.picture((128, 96), (30, 60, next(_seeds) % 256)))


@dataclass(frozen=True)
class Fault:
    """One row: what breaks, when, and what every surface must answer."""

    case: str
    kind: str | None                                   # None: the job still finishes
    needles: tuple[str, ...] = ()
    before: Callable[[FakeComfy], Any] = lambda fake: None
    during: Callable[[FakeComfy], Any] | None = None   # once the sampler is under way
    request: Callable[[], Any] = generate
    api: tuple[int, str] | None = (200, "")           # status and error code through /v1
    bound_s: float = 10.0                              # the job ends this soon after the fault


def _stall_and_slow(fake: FakeComfy) -> None:
    fake.stall_websockets(True)
    fake.set_delays(step=0.2)                          # 16 steps: 3 s, past a 1 s deadline


FAULTS = [
    Fault("down_at_start", "unreachable", ("not reachable", "is it running"),
          before=FakeComfy.stop, api=(503, "comfyui_unreachable"), bound_s=5),
    Fault("killed_mid_job", "unreachable", ("not reachable", "is it running"),
          during=FakeComfy.stop, api=(503, "comfyui_unreachable"),
          bound_s=CLIENT_TIMINGS["unreachable_after_s"] + 3),
    Fault("restarted_mid_job", "lost", (LOST,), during=FakeComfy.restart,
          api=(503, "comfyui_restarted"), bound_s=5),
    Fault("socket_dropped_mid_job", None, during=FakeComfy.drop_websockets, bound_s=5),
    Fault("socket_stalled", None, before=lambda fake: fake.stall_websockets(True), bound_s=5),
    Fault("socket_stalled_past_the_deadline", "timeout",
          ("did not finish the job within 1 s", "try again"), before=_stall_and_slow,
          api=None, bound_s=4),     # the app's deadline is 30 s; tests/api has the 504
    Fault("http_500_empty_body_on_prompt", "execution",
          ("HTTP 500", "empty body", "ComfyUI's own log"),
          before=lambda fake: fake.fail_http("/prompt"), api=(502, "execution_failed")),
    Fault("out_of_memory_at_the_sampler", "out_of_memory", ("(KSampler)",),
          before=lambda fake: fake.oom_at("KSampler"), api=(507, "out_of_memory")),
    Fault("model_file_missing", "missing_models",
          (Settings().models.generate_unet, "models/diffusion_models/"),
          before=lambda fake: fake.set_models("diffusion_models", []),
          api=(424, "missing_models")),
    # A missing pack is "the server lacks something", like a model file: 424 (issue 10 #15).
    Fault("node_pack_missing", "missing_models", ("BiRefNetRMBG", "ComfyUI-RMBG"),
          before=lambda fake: fake.hide_classes("BiRefNetRMBG"), request=remove_background,
          api=(424, "missing_models")),
    Fault("node_raises", "execution", ("KSampler", "CUDA kernel failed"),
          before=lambda fake: fake.fail_at("KSampler", "RuntimeError", "CUDA kernel failed"),
          api=(502, "execution_failed")),
]
# A phrase of each remedy, in the guide's order (OOM_REMEDIES and variant.remedies both say them).
OOM_REMEDY_WORDS = ("lower the resolution", "one job at a time", "other services",
                    "another GPU", "GGUF")
assert all(word in remedy for word, remedy in zip(OOM_REMEDY_WORDS, OOM_REMEDIES, strict=True))
SLOW = {"killed_mid_job", "restarted_mid_job", "socket_dropped_mid_job"}


def check_message(fault: Fault, message: str, hide: tuple[str, ...] = ()) -> None:
    for needle in fault.needles:
        assert needle in message, message
    if fault.kind == "out_of_memory":     # the operations guide's remedies, in its order
        # (this device's, with its figures, when the studio knows the device: issue 16)
        positions = [message.find(remedy) for remedy in OOM_REMEDY_WORDS]
        assert -1 not in positions and positions == sorted(positions), message
    assert_actionable(message, hide=hide)


# --- studio.run ---------------------------------------------------------------------------


@pytest.fixture
async def make_studio(matrix_fake: FakeComfy) -> AsyncIterator[Callable[..., Studio]]:
    clients: list[ComfyClient] = []

    def make(**overrides: Any) -> Studio:
        client = ComfyClient(matrix_fake.url, stall_poll_s=0.3, down_poll_s=0.1,
                             unreachable_after_s=UNREACHABLE_AFTER_S)
        clients.append(client)
        values: dict[str, Any] = {"max_sampling_pixels": 256 * 256, "job_timeout_s": 20.0}
        values.update(overrides)
        settings = Settings(comfy_url=matrix_fake.url, **values)
        return Studio(client, settings, TemplateLibrary(settings.workflows_dir))

    yield make
    for client in clients:
        assert client.watched_prompt_ids == frozenset(), "a watcher outlived its job"
        await client.aclose()


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.case)
async def test_studio_run(fault: Fault, make_studio: Any, matrix_fake: FakeComfy) -> None:
    studio = make_studio(job_timeout_s=1.0 if fault.kind == "timeout" else 20.0)
    if fault.during is not None:
        matrix_fake.set_delays(step=STEP_DELAY_S)
    fault.before(matrix_fake)
    broke_at = time.monotonic()
    last: Any = None
    async with asyncio.timeout(HANG_GUARD_S), aclosing(studio.run(fault.request())) as events:
        async for event in events:
            last = event
            if fault.during is not None and isinstance(event, Progress) and event.step:
                fault.during(matrix_fake)
                broke_at, fault = time.monotonic(), _once(fault)
    took = time.monotonic() - broke_at
    if fault.kind is None:
        assert isinstance(last, Finished), last
        assert last.images and last.images[0].size == (256, 256)
    else:
        assert isinstance(last, Failed), last
        assert last.kind == fault.kind, last
        check_message(fault, last.message, comfy_addresses(matrix_fake.url))
    assert took < fault.bound_s, f"{fault.case} took {took:.1f} s after the fault"
    if matrix_fake.running:
        assert matrix_fake.wait_idle(5) and matrix_fake.queue_ids() == ([], [])


def _once(fault: Fault) -> Fault:
    """The same row with its mid-job fault spent (it fires on the first step only)."""
    return Fault(fault.case, fault.kind, fault.needles, fault.before, None, fault.request,
                 fault.api, fault.bound_s)


# --- the surfaces -------------------------------------------------------------------------


def _when_sampling(fake: FakeComfy, action: Callable[[FakeComfy], Any]) -> threading.Thread:
    """Run `action` once a prompt runs and its sampler has had time to start."""
    def watch() -> None:
        deadline = time.monotonic() + HANG_GUARD_S
        while not fake.queue_ids()[0] and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(4 * STEP_DELAY_S)
        action(fake)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def hidden(studio: MatrixStudio) -> tuple[str, ...]:
    """Never shown to people: ComfyUI's address, the server's own folders."""
    return (*comfy_addresses(studio.fake.url), str(studio.settings.workflows_dir.parent))


@contextmanager
def broken(fake: FakeComfy, fault: Fault) -> Iterator[None]:
    if fault.during is not None:
        fake.set_delays(step=STEP_DELAY_S)
    fault.before(fake)
    watcher = _when_sampling(fake, fault.during) if fault.during is not None else None
    yield
    if watcher is not None:
        watcher.join(HANG_GUARD_S)


@pytest.mark.parametrize("fault", [f for f in FAULTS if f.api], ids=lambda f: f.case)
def test_api(fault: Fault, studio: MatrixStudio) -> None:
    with broken(studio.fake, fault):
        if fault.request is remove_background:
            picture = inputs.png(remove_background().image)
            response = studio.edit([("image", ("p.png", picture, "image/png"))],
                                   model="qwen-image-remove-background")
        else:
            response = studio.generate(steps=STEPS, seed=next(_seeds))
    assert fault.api is not None
    status, code = fault.api
    assert response.status_code == status, response.text
    if status != 200:
        error = response.json()["error"]
        assert error["code"] == code, error
        check_message(fault, error["message"], hidden(studio))


@pytest.mark.parametrize("fault", [f for f in FAULTS if f.kind != "timeout"],
                         ids=lambda f: f.case)
def test_ui(fault: Fault, studio: MatrixStudio, ui: UISession) -> None:
    with broken(studio.fake, fault):
        if fault.request is remove_background:
            shown = ui.run("remove_background", image=remove_background().image)
        else:
            shown = ui.run("generate", prompt=f"a lighthouse {next(_seeds)}", width=256,
                           height=256, steps=STEPS)
    if fault.kind is None:
        assert shown.status == "Done.", shown
    else:
        assert shown.status == "Failed." and shown.result_url is None, shown
        check_message(fault, shown.message, hidden(studio))


def test_studio_starts_while_comfyui_is_down(studio: MatrixStudio) -> None:
    """Recorded by the fixture, which started the app with the fake stopped."""
    boot = studio.boot
    assert boot["page"] == 200                     # the studio itself is up
    assert boot["healthz"] == 503 and "not reachable" in boot["healthz_body"]
    assert boot["job"] == 503 and boot["job_s"] < 5, boot   # the job fails fast
    api_message = boot["job_body"]["error"]["message"]
    hide = comfy_addresses(studio.fake.url)
    for text in (api_message, boot["healthz_body"]):
        assert not any(secret in text for secret in hide), text
    assert_actionable(api_message, hide=hide)
    assert boot["ui"].message == api_message       # one sentence on every surface


# --- a result, even when ComfyUI serves everything from its cache --------------------------


async def test_identical_rerun_is_fresh_and_equal(make_studio: Any, matrix_fake: FakeComfy) -> None:
    studio, request = make_studio(), generate()
    runs = []
    for _ in range(2):
        runs.append([event async for event in studio.run(request)][-1])
    first, second = runs
    assert isinstance(first, Finished) and isinstance(second, Finished)
    assert np.array_equal(np.asarray(first.images[0]), np.asarray(second.images[0]))
    # the per-submission nonce: a new output file, the sampler itself from ComfyUI's cache
    entries = list(matrix_fake.history().values())[-2:]
    files = [next(iter(e["outputs"].values()))["images"][0]["filename"] for e in entries]
    assert files[0] != files[1]
    cached = _cached_nodes(entries[1])
    assert "KSampler" in {first.workflow[n]["class_type"] for n in cached}


async def test_fully_cached_rerun_still_gives_the_result(
    make_studio: Any, matrix_fake: FakeComfy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forced: the same nonce twice, so ComfyUI runs nothing and re-sends the old files."""
    monkeypatch.setattr("backend.jobs.new_nonce", lambda: "matrix-same-nonce")
    studio, request = make_studio(), generate()
    first = [event async for event in studio.run(request)][-1]
    second = [event async for event in studio.run(request)][-1]
    assert isinstance(second, Finished), second
    assert set(_cached_nodes(list(matrix_fake.history().values())[-1])) == set(first.workflow)
    assert np.array_equal(np.asarray(first.images[0]), np.asarray(second.images[0]))


def _cached_nodes(entry: dict[str, Any]) -> list[str]:
    return next(data["nodes"] for kind, data in entry["status"]["messages"]
                if kind == "execution_cached")


# --- closing a job at every moment, and right as it completes -------------------------------


async def test_closing_at_every_event_leaves_nothing_behind(
    make_studio: Any, matrix_fake: FakeComfy
) -> None:
    studio = make_studio()
    request = GenerateRequest("x", 256, 256, seed=1, steps=3)
    count = len([event async for event in studio.run(request)])
    for stop_after in range(1, count):
        async with asyncio.timeout(HANG_GUARD_S):
            async with aclosing(studio.run(request)) as events:
                seen = 0
                async for _event in events:
                    seen += 1
                    if seen == stop_after:
                        break
        assert studio.client.watched_prompt_ids == frozenset(), stop_after
        assert matrix_fake.wait_idle(5) and matrix_fake.queue_ids() == ([], []), stop_after
    # and the studio's own queue let go of every turn: the next job runs through
    last = [event async for event in studio.run(request)][-1]
    assert isinstance(last, Finished), last


RACES = 15


async def test_closing_right_as_it_succeeds(make_studio: Any, matrix_fake: FakeComfy) -> None:
    """Close the stream the moment execution_success arrives, with the next job right behind:
    no exception, no watcher left, the late cancel never hits the neighbour, queue empty."""
    client = make_studio().client
    ref = await client.upload_image(inputs.png(inputs.picture()))
    before = matrix_fake.counters["interrupts_applied"]
    for race in range(RACES):
        async with asyncio.timeout(HANG_GUARD_S):
            closed = client.execute(_graph(ref.load_name, f"a{race}"))
            neighbour = asyncio.ensure_future(_drain(client.execute(_graph(ref.load_name,
                                                                             f"b{race}"))))
            async for item in closed:
                if isinstance(item, ExecutionSuccess):
                    await closed.aclose()
                    break
            done = await neighbour
        assert done.images("3"), f"race {race}: the neighbour lost its result"
        assert client.watched_prompt_ids == frozenset(), race
    assert matrix_fake.wait_idle(5) and matrix_fake.queue_ids() == ([], [])
    assert matrix_fake.counters["interrupts_applied"] == before


def _graph(image: str, prefix: str) -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    }


async def _drain(stream: AsyncIterator[Any]) -> Any:
    last = None
    async for item in stream:
        last = item
    return last

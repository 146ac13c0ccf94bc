"""The shared run loop (ui/runner.run_job) against a scripted studio: what each event does to
the tab, and that stopping early closes the job's event stream (which cancels it in ComfyUI)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from PIL import Image  # noqa: E402

from backend.jobs import Failed, Finished, Preview, Progress, Queued, Started  # noqa: E402
from backend.library import png as metadata  # noqa: E402
from backend.modes import REGISTRY, ModeRegistry  # noqa: E402
from backend.monitor import MonitorSnapshot  # noqa: E402
from backend.settings import Settings  # noqa: E402
from ui.history import ResultStore  # noqa: E402
from ui.layout import OutputPanel, RunControls  # noqa: E402
from ui.runner import run_job  # noqa: E402
from ui.session import SessionJobs  # noqa: E402
from ui.tabspec import Shared, TabSpec  # noqa: E402


class ScriptedStudio:
    def __init__(self, events, raise_after=None):
        self.events, self.raise_after, self.closed, self.asked = events, raise_after, False, []

    async def run(self, request, *, surface="ui"):
        self.asked.append((request, surface))
        try:
            for event in self.events:
                yield event
            if self.raise_after:
                raise self.raise_after
        finally:
            self.closed = True


class QuietMonitor:
    def snapshot(self) -> MonitorSnapshot:
        return MonitorSnapshot(online=False, error=None)


@dataclass
class Context:
    """The parts of a StudioContext the run loop reads (real settings and modes)."""

    studio: ScriptedStudio
    settings: Settings = field(default_factory=lambda: Settings(comfy_url="http://10.0.0.5:8188"))
    monitor: QuietMonitor = field(default_factory=QuietMonitor)
    registry: ModeRegistry = REGISTRY


def setup(tmp_path, studio, mode="generate"):
    shared = Shared(Context(studio), ResultStore(tmp_path), SessionJobs(),  # type: ignore[arg-type]
                    history="HISTORY", gallery="GALLERY")
    panel = OutputPanel(mode, status="STATUS", preview="PREVIEW", result="RESULT", info="INFO")
    tab = TabSpec(
        mode=REGISTRY.get(mode), fields={}, controls=RunControls(None, None, "MSG"), panel=panel,
        advanced=None,
    )
    return shared, tab


async def collect(gen, limit=None):
    out = []
    async for update in gen:
        out.append(update)
        if limit and len(out) >= limit:
            await gen.aclose()
            break
    return out


def progress_log():
    calls = []
    return calls, lambda *args, **kwargs: calls.append((args, kwargs))


async def test_events_become_progress_preview_result_and_history(tmp_path):
    result = Image.new("RGB", (32, 16), (1, 2, 3))
    studio = ScriptedStudio([
        Queued(2, "p1"), Started(True), Progress(0.5, 5, 10, "Sampling", 3.0),
        Preview(Image.new("RGB", (8, 8))),
        Finished([result], 77, {"total_s": 1.5}, {"1": {"class_type": "X"}}, "generate", {}, True),
    ])
    shared, spec = setup(tmp_path, studio)
    calls, progress = progress_log()
    updates = await collect(run_job(shared, spec, {"prompt": "a pear"}, [], progress, "sess"))

    assert any(k[1].get("desc") == "Queued (position 3)" for k in calls)
    assert any(a == ((5, 10),) and k["unit"] == "steps" for a, k in calls)
    assert any("PREVIEW" in u and isinstance(u["PREVIEW"], Image.Image) for u in updates)
    final = updates[-1]
    path = final["RESULT"]["value"]
    assert metadata.read_parameters(path, REGISTRY.parameter_names()) == {
        "mode": "generate", "prompt": "a pear", "seed": 77, "width": 32, "height": 16}
    assert metadata.read_workflow(path) == {"1": {"class_type": "X"}}
    assert "32×16 · 1.5 s" in final["INFO"] and "models had to load" in final["INFO"]
    assert [e.path for e in final["HISTORY"]] == [path]
    assert studio.closed and shared.sessions.of("sess") == ()
    assert studio.asked[0][1] == "ui" and studio.asked[0][0].prompt == "a pear"


async def test_invalid_input_is_shown_and_nothing_runs(tmp_path):
    studio = ScriptedStudio([])
    shared, spec = setup(tmp_path, studio, "inpaint")   # no picture in the editor
    updates = await collect(run_job(shared, spec, {}, [], lambda *a, **k: None, None))
    assert "Add a picture first" in updates[-1]["MSG"]
    assert not studio.closed, "the studio was never asked"


async def test_failure_message_hides_comfyui_address(tmp_path):
    failed = Failed("ComfyUI at http://10.0.0.5:8188 is not reachable.", "", "unreachable")
    shared, spec = setup(tmp_path, ScriptedStudio([failed]))
    updates = await collect(run_job(shared, spec, {}, [], lambda *a, **k: None, None))
    assert "not reachable" in updates[-1]["MSG"] and "10.0.0.5" not in updates[-1]["MSG"]


async def test_stopping_early_closes_the_job_stream(tmp_path):
    studio = ScriptedStudio([Queued(0, "p1"), Preview(Image.new("RGB", (4, 4)))] * 3)
    shared, spec = setup(tmp_path, studio)
    # Like a closed browser tab: the handler is closed after its first preview.
    await collect(run_job(shared, spec, {}, [], lambda *a, **k: None, "s"), limit=3)
    assert studio.closed
    assert shared.sessions.of("s") == ()


async def test_an_internal_error_becomes_a_message_not_a_trace(tmp_path):
    shared, spec = setup(tmp_path, ScriptedStudio([Started(False)], KeyError("boom")))
    updates = await collect(run_job(shared, spec, {}, [], lambda *a, **k: None, None))
    assert "internal error (KeyError)" in updates[-1]["MSG"]
    assert "Traceback" not in updates[-1]["MSG"]

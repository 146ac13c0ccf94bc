"""ui/live.py: what a page shows while jobs run, from the events a follower sees."""

from __future__ import annotations

import html
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from PIL import Image  # noqa: E402

from backend.desk import JobState, JobView, Saved, Ticket, Who  # noqa: E402
from backend.events import Failed, Preview, Progress, Queued, Started  # noqa: E402
from backend.modes import REGISTRY  # noqa: E402
from backend.monitor import MonitorSnapshot  # noqa: E402
from ui.live import (  # noqa: E402
    Track,
    ended_status,
    phone_line,
    preview_html,
    status_html_for,
    strip_html,
)

GB = 1024**3


def line_of(tracks: list[Track]) -> str:
    return html.unescape(status_html_for(tracks) or "")


def test_a_job_goes_from_waiting_to_steps_to_done() -> None:
    track = Track("j1", "generate")
    track.apply(Queued(2, ""))
    assert "2 jobs ahead in the studio's line" in line_of([track])
    track.apply(Queued(0, "prompt-1"))
    assert "Queued in ComfyUI (position 1)" in line_of([track])
    track.apply(Started(True))
    assert "Loading models" in line_of([track])
    track.apply(Progress(0.5, 10, 20, "Sampler", 3.2))
    line = line_of([track])
    assert "Sampler · step 10/20 · ~3 s left" in line and "width:50.0%" in line
    assert track.apply(Saved(())) and not track.active
    assert status_html_for([track]) is None
    assert "Done." in ended_status(track)


def test_a_batch_and_a_queue_are_counted_on_the_line() -> None:
    tracks = [Track(f"j{i}", "generate", index=i, count=3) for i in range(3)]
    tracks[0].apply(Progress(0.1, 2, 20, "Sampler"))
    line = line_of(tracks)
    assert "Image 1 of 3 · Sampler · step 2/20 · 2 more queued" in line


def test_a_stop_and_a_failure_end_differently() -> None:
    stopped, failed = Track("a", "edit"), Track("b", "edit")
    assert stopped.apply(Failed("Stopped.", "", "interrupted"))
    assert failed.apply(Failed("ComfyUI is not reachable.", "", "unreachable"))
    assert "Stopped." in ended_status(stopped) and "Failed." in ended_status(failed)


def test_the_preview_is_inline_and_without_previews_the_steps_show_with_a_hint() -> None:
    track = Track("j", "generate")
    track.apply(Preview(Image.new("RGB", (640, 640), (200, 10, 10))))
    shown = preview_html(track, hint=True)
    assert "src='data:image/jpeg;base64," in shown       # nothing written anywhere
    blind = Track("k", "generate")
    blind.apply(Progress(0.2, 1, 20, "Sampler"))
    assert preview_html(blind, hint=True) == ""           # too early to say
    blind.apply(Progress(0.3, 3, 20, "Sampler"))
    assert "Step 3 / 20" in preview_html(blind, hint=True)
    assert "--preview-method auto" in preview_html(blind, hint=True)
    assert "--preview-method" not in preview_html(blind, hint=False)


def test_the_queue_strip_lists_waiting_and_running_jobs_with_a_cancel() -> None:
    who = Who("user:ann", "user:ann", "ui")
    running = JobView(Ticket("r1", who, "generate", "a fox in snow", 0.0), JobState.RUNNING,
                      None, 0.45, "", (), "gpu-a")
    waiting = JobView(Ticket("w1", who, "edit", "", 0.0), JobState.WAITING, 1, 0.0, "", ())
    done = JobView(Ticket("d1", who, "edit", "", 0.0), JobState.FINISHED, None, 1.0, "", ())
    strip = strip_html([running, waiting, done], REGISTRY, several_servers=True)
    assert "Generate</b> “a fox in snow” · running 45% on gpu-a" in strip
    assert "Edit</b> · #2 in the studio's line" in strip
    assert strip.count("data-job=") == 2 and "d1" not in strip
    assert strip_html([done], REGISTRY, several_servers=False) == ""


def test_the_phone_line_says_online_vram_and_queue() -> None:
    snap = MonitorSnapshot(online=True, error=None, vram_total=48 * GB, vram_free=12 * GB,
                           queue_running=("a",), queue_pending=("b",), studio_waiting=1)
    line = phone_line(snap, mine=2)
    assert "Online · VRAM 75% · queue 3 · yours 2" in line
    assert "ComfyUI offline" in phone_line(MonitorSnapshot(online=False, error="x"), 0)

"""ui/sidebar.py render(): what the status panel says for a snapshot (no server needed)."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from backend.desk import JobState, JobView, Ticket, Who  # noqa: E402
from backend.modes import REGISTRY  # noqa: E402
from backend.monitor import ModeStatus, MonitorSnapshot  # noqa: E402
from ui.sidebar import render  # noqa: E402

GB = 1024**3
URL = "http://10.1.2.3:8188"
ANN = Who("user:ann", "user:ann", "ui")


def job(mode: str, state: JobState, position: int | None = None) -> JobView:
    ticket = Ticket(f"id-{mode}", ANN, mode, "a prompt", 0.0)
    return JobView(ticket, state, position, 0.0, "", ())


def test_offline_says_not_reachable_and_never_the_address():
    snap = MonitorSnapshot(online=False, error=f"Could not connect to {URL} (refused)")
    text = render(snap, REGISTRY, (), URL)
    assert "ComfyUI offline — not reachable" in text
    assert "10.1.2.3" not in text and "8188" not in text


def test_online_shows_vram_queue_position_and_modes():
    modes = {
        "generate": ModeStatus("generate", True, "", 30.0, True, "fits"),
        "region_edit": ModeStatus("region_edit", False, "missing node classes: Florence2Run",
                                  33.0, False, "needs ~33 GB; 12.0 GB free"),
    }
    snap = MonitorSnapshot(
        online=True, error=None, comfyui_version="0.3.64", vram_total=48 * GB,
        vram_free=12 * GB, queue_running=("a",), queue_pending=("b", "mine"),
        last_mode="generate", loaded_family="generation model", modes=modes,
    )
    text = render(snap, REGISTRY, (job("edit", JobState.RUNNING),), URL)
    assert "ComfyUI online · v0.3.64" in text
    assert "36.0 / 48.0 GB" in text
    assert "running now" in text
    assert "Florence2Run" in text
    assert "Will not fit in free VRAM now" in text
    assert "Last run: <b>Generate</b> — the generation model is likely in memory" in text


def test_a_last_mode_that_is_no_longer_registered_still_renders():
    snap = MonitorSnapshot(online=True, error=None, last_mode="app-gone")
    assert "Last run: <b>app-gone</b>" in render(snap, REGISTRY, (), URL)


def test_a_job_waiting_in_the_studio_queue_shows_its_place():
    snap = MonitorSnapshot(online=True, error=None, queue_running=("other",))
    text = render(snap, REGISTRY, (job("inpaint", JobState.WAITING, 2),), URL)
    assert "#3 in the studio's line" in text


def test_the_studio_queue_is_counted_beside_comfyuis():
    snap = MonitorSnapshot(online=True, error=None, queue_running=("x",), studio_waiting=3)
    assert "<b>3</b> in the studio's line" in render(snap, REGISTRY, (), URL)
    assert "studio's line" not in render(MonitorSnapshot(online=True, error=None), REGISTRY, (), URL)


def test_previews_on_or_off_is_said_once_known():
    snap = MonitorSnapshot(online=True, error=None)
    assert "previews_state" not in render(snap, REGISTRY, (), URL, None)
    assert "Live previews: on" in render(snap, REGISTRY, (), URL, True)
    off = render(snap, REGISTRY, (), URL, False)
    assert "Live previews: off" in off and "--preview-method auto" in off

"""ui/sidebar.py render() with several ComfyUI servers (issue 15): a row per server, which
server runs the person's job, and no address anywhere."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from backend.desk import JobState, JobView, Ticket, Who  # noqa: E402
from backend.modes import REGISTRY  # noqa: E402
from backend.monitor import ModeStatus, MonitorSnapshot  # noqa: E402
from ui.sidebar import render  # noqa: E402

GB = 1024**3
URLS = "a=http://10.1.2.3:8188,b=http://10.1.2.4:8189"
ANN = Who("user:ann", "user:ann", "ui")


def modes(ready: bool | None, unready: tuple[str, ...] = ()) -> dict[str, ModeStatus]:
    return {
        name: ModeStatus(name, False if name in unready else ready, "", 30.0, True, "fits")
        for name in REGISTRY.names()
    }


def test_one_row_per_server_and_where_the_job_runs() -> None:
    a = MonitorSnapshot(online=True, error=None, server="a", vram_total=48 * GB,
                        vram_free=12 * GB, queue_running=("p1",), loaded_file="qwen_edit.gguf",
                        modes=modes(True))
    b = MonitorSnapshot(online=False, error="ComfyUI at http://10.1.2.4:8189 refused",
                        server="b", modes=modes(None))
    total = MonitorSnapshot(online=True, error=None, modes=modes(True))
    mine = (JobView(Ticket("j1", ANN, "edit", "night", 0.0), JobState.RUNNING, None, 0.4, "",
                    (), "a"),
            JobView(Ticket("j2", ANN, "generate", "dawn", 0.0), JobState.WAITING, 1, 0.0, "",
                    ()))
    text = render(total, REGISTRY, mine, URLS, None, {"a": a, "b": b})
    assert "1 of 2 servers online" in text
    assert text.count("class='server-row'") == 2
    assert "id='server-a'" in text and "id='server-b'" in text
    assert "online · queue 1 · yours 1" in text and "36.0 / 48.0 GB" in text
    assert "warm: qwen_edit.gguf" in text and f"{len(REGISTRY.names())}/" in text
    assert "running now on <b class='job-server'>a</b>" in text
    assert "#2 in the studio's line</span>" in text      # not sent yet: no server
    for secret in ("10.1.2.3", "10.1.2.4", "8188", "8189"):
        assert secret not in text


def test_a_server_missing_a_pack_says_which_modes() -> None:
    a = MonitorSnapshot(online=True, error=None, server="a", modes=modes(True, ("inpaint",)))
    b = MonitorSnapshot(online=True, error=None, server="b", modes=modes(True))
    text = render(MonitorSnapshot(online=True, error=None), REGISTRY, (), URLS, None,
                  {"a": a, "b": b})
    assert "missing here: Inpaint" in text and "badge bad" in text


def test_one_server_renders_as_before() -> None:
    snap = MonitorSnapshot(online=True, error=None, comfyui_version="0.3.64")
    assert render(snap, REGISTRY, (), URLS, None, {"1": snap}) == render(snap, REGISTRY, (), URLS)

"""ui/sidebar.py planning_html(): per mode and variant, the expected peak against the device
(issue 16), with the other tenants' share, as pure HTML (no server needed)."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from backend.modes import REGISTRY  # noqa: E402
from backend.monitor import ModeStatus, MonitorSnapshot  # noqa: E402
from backend.settings import Settings  # noqa: E402
from ui.sidebar import planning_html, render  # noqa: E402

GB = 1024**3


def row(text: str, title: str) -> str:
    start = text.index(f"<td>{title}</td>")
    return text[start:text.index("</tr>", start)]


def test_a_shared_24_gb_card_fits_gguf_and_not_fp8() -> None:
    modes = {"edit": ModeStatus("edit", True, "", 30.0, False, "", gguf_ready=False)}
    snap = MonitorSnapshot(online=True, error=None, vram_total=24 * GB,
                           vram_free=int(2.0 * GB), comfy_vram_held=int(15.4 * GB),
                           modes=modes)
    text = planning_html(snap, REGISTRY, Settings())
    assert text.startswith("<details class='planning' id='gpu_planning'>")   # collapsed
    assert "VRAM: free 2.0 GB · ComfyUI 15.4 GB · others 6.6 GB of 24 GB" in text
    generate = row(text, "Generate")
    assert "30 GB · will not fit" in generate and "16 GB · fits after unloading" in generate
    assert "16 GB · fits after unloading (not installed)" in row(text, "Edit")
    assert "3 GB · fits after unloading</td><td class='hint'>—" in row(text, "Remove background")
    assert text in render(snap, REGISTRY, planning=text)


def test_no_reading_no_section() -> None:
    assert planning_html(MonitorSnapshot(online=False, error="down"), REGISTRY, Settings()) == ""

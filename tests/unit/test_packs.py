"""backend/comfy/packs.py: one table names the pack to install, for rejections and preflight."""

from __future__ import annotations

import pytest

from backend.comfy.packs import pack_for


@pytest.mark.parametrize(
    ("class_type", "pack"),
    [
        ("BiRefNetRMBG", "ComfyUI-RMBG"),
        ("SAM2Segment", "ComfyUI-RMBG"),  # the RMBG pack's, not segment-anything-2's
        ("Sam2Segmentation", "ComfyUI-segment-anything-2"),
        ("Florence2toCoordinates", "ComfyUI-segment-anything-2"),
        ("Florence2Run", "ComfyUI-Florence2"),
        ("LanPaint_KSampler", "LanPaint"),
        ("UnetLoaderGGUF", "ComfyUI-GGUF"),
        ("KSampler", None),
        ("MySegmenter", None),  # no substring guessing
    ],
)
def test_pack_for(class_type: str, pack: str | None) -> None:
    assert pack_for(class_type) == pack

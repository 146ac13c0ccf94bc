"""Which custom node pack provides a node class: one table for every message that tells a
person what to install (a rejected prompt, preflight readiness)."""

from __future__ import annotations

PACK_CLASSES: dict[str, tuple[str, ...]] = {
    "ComfyUI-RMBG": ("BiRefNetRMBG", "RMBG", "SAM2Segment", "SAM3Segment", "Segment", "FaceSegment"),
    "ComfyUI-Florence2": (
        "DownloadAndLoadFlorence2Model",
        "DownloadAndLoadFlorence2Lora",
        "Florence2ModelLoader",
        "Florence2Run",
    ),
    "ComfyUI-segment-anything-2": (
        "DownloadAndLoadSAM2Model",
        "Sam2Segmentation",
        "Sam2AutoSegmentation",
        "Sam2VideoSegmentation",
        "Sam2VideoSegmentationAddPoints",
        "Florence2toCoordinates",
    ),
    "ComfyUI-GGUF": ("UnetLoaderGGUF", "CLIPLoaderGGUF", "DualCLIPLoaderGGUF"),
}
PACK_PREFIXES: dict[str, str] = {"LanPaint_": "LanPaint", "UnetLoaderGGUF": "ComfyUI-GGUF"}


def pack_for(class_type: str) -> str | None:
    """The custom-node pack that provides `class_type`, if we know it (exact names first,
    so the RMBG pack's SAM2Segment is not mistaken for the segment-anything-2 pack)."""
    for pack, classes in PACK_CLASSES.items():
        if class_type in classes:
            return pack
    for prefix, pack in PACK_PREFIXES.items():
        if class_type.startswith(prefix):
            return pack
    return None

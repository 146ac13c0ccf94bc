"""Mask nodes of the fake ComfyUI with ComfyUI's semantics (nodes_mask.py). MASK = float32
(B, H, W), 1 = the area to change."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import ExecContext, NodeFailure, NodeOutput, register
from .pixels import as_image, as_mask

CHANNELS = ("red", "green", "blue", "alpha")


def _neighbourhood(mask: np.ndarray, reduce: Any, tapered: bool) -> np.ndarray:
    """One 3×3 grey dilation/erosion step (cross when tapered, square otherwise), edges
    repeated like scipy's 'reflect' mode does for a one-pixel footprint."""
    p = np.pad(mask, ((0, 0), (1, 1), (1, 1)), mode="edge")
    h, w = mask.shape[1], mask.shape[2]
    offsets = [(1, 1), (0, 1), (2, 1), (1, 0), (1, 2)]
    if not tapered:
        offsets += [(0, 0), (0, 2), (2, 0), (2, 2)]
    return reduce.reduce([p[:, dy : dy + h, dx : dx + w] for dy, dx in offsets])


def grow_mask(mask: np.ndarray, expand: int, tapered_corners: bool = True) -> np.ndarray:
    """GrowMask: `expand` > 0 dilates that many pixels, < 0 erodes."""
    out = as_mask(mask).copy()
    reduce = np.maximum if expand > 0 else np.minimum
    # Past the image's size every further step changes nothing.
    for _ in range(min(abs(expand), out.shape[1] + out.shape[2])):
        out = _neighbourhood(out, reduce, tapered_corners)
    return out


def feather_mask(mask: np.ndarray, left: int, top: int, right: int, bottom: int) -> np.ndarray:
    """FeatherMask: fade the mask towards the image borders, exactly like ComfyUI (including
    its off-by-one on the right and bottom edges: index -0 is the first column/row)."""
    out = as_mask(mask).copy()
    h, w = out.shape[1], out.shape[2]
    left, right, top, bottom = min(left, w), min(right, w), min(top, h), min(bottom, h)
    for x in range(left):
        out[:, :, x] *= (x + 1.0) / left
    for x in range(right):
        out[:, :, -x] *= (x + 1.0) / right
    for y in range(top):
        out[:, y, :] *= (y + 1.0) / top
    for y in range(bottom):
        out[:, -y, :] *= (y + 1.0) / bottom
    return out


@register("GrowMask")
async def grow_mask_node(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    expand = int(inputs.get("expand", 0))
    tapered = bool(inputs.get("tapered_corners", True))
    return NodeOutput((grow_mask(inputs["mask"], expand, tapered),))


@register("FeatherMask")
async def feather_mask_node(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    sides = (int(inputs.get(k, 0)) for k in ("left", "top", "right", "bottom"))
    return NodeOutput((feather_mask(inputs["mask"], *sides),))


@register("ThresholdMask")
async def threshold_mask(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    value = float(inputs.get("value", 0.5))
    return NodeOutput(((as_mask(inputs["mask"]) > value).astype(np.float32),))


@register("ImageToMask")
async def image_to_mask(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    image = as_image(inputs["image"])
    index = CHANNELS.index(inputs.get("channel", "red"))
    if index >= image.shape[-1]:
        # What torch says when ComfyUI indexes a missing alpha channel.
        raise NodeFailure(
            "IndexError",
            f"index {index} is out of bounds for dimension 3 with size {image.shape[-1]}",
        )
    return NodeOutput((image[..., index].copy(),))


@register("MaskToImage")
async def mask_to_image(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    mask = as_mask(inputs["mask"])
    return NodeOutput((np.repeat(mask[..., None], 3, axis=-1),))


@register("InvertMask")
async def invert_mask(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    return NodeOutput(((1.0 - as_mask(inputs["mask"])).astype(np.float32),))


@register("SolidMask")
async def solid_mask(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    value = float(inputs.get("value", 1.0))
    width, height = int(inputs.get("width", 512)), int(inputs.get("height", 512))
    return NodeOutput((np.full((1, height, width), value, dtype=np.float32),))

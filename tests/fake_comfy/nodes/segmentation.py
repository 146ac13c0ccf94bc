"""Segmentation pack nodes of the fake ComfyUI: BiRefNetRMBG (ComfyUI-RMBG), Florence2Run
(ComfyUI-Florence2), Florence2toCoordinates and Sam2Segmentation (ComfyUI-segment-anything-2).

Output shapes and names follow the packs: BiRefNetRMBG → (IMAGE RGBA for background "Alpha" /
RGB for "Color", MASK 1 = foreground, MASK_IMAGE); Florence2Run → (image, mask, caption, data)
with data = [{"bboxes": [[x1, y1, x2, y2], ...], "labels": [...]}] per image for
caption_to_phrase_grounding; Florence2toCoordinates → (center_coordinates JSON string, bboxes);
Sam2Segmentation → mask.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import numpy as np

from .base import ExecContext, NodeFailure, NodeOutput, register
from .masks import grow_mask
from .models import Florence2Model, Sam2Model, Weights, use, vram_gb
from .pixels import as_image, blur_planes

TEXT_TASKS = ("referring_expression_segmentation", "caption_to_phrase_grounding", "docvqa")
BOX_TASKS = (
    "region_caption",
    "dense_region_caption",
    "caption_to_phrase_grounding",
    "region_proposal",
)
NO_MATCH_WORDS = ("nothing",)
NO_MATCH_EXACT = ("", "none")

# --- background removal ----------------------------------------------------------------------


def foreground_alpha(rgb: np.ndarray, sensitivity: float = 1.0) -> np.ndarray:
    """(H, W, 3) → (H, W) alpha: pixels that differ from the border colour are foreground,
    with a soft ramp and a slight blur so edges are not binary (like a matting model)."""
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    background = np.median(border, axis=0)
    distance = np.sqrt(((rgb - background) ** 2).sum(axis=-1) / 3.0)
    alpha = np.clip((distance - 0.04) / 0.08, 0.0, 1.0)
    # The RMBG pack's sensitivity: lower values pull the mask up ("1 + (1 − s)").
    alpha = np.clip(alpha * (1.0 + (1.0 - sensitivity)), 0.0, 1.0)
    return blur_planes(alpha[None].astype(np.float32), 1, 0.6)[0]


def _hex_colour(code: str) -> np.ndarray:
    code = code.lstrip("#")
    if len(code) not in (6, 8):
        raise NodeFailure("ValueError", "Invalid color format")
    return np.array([int(code[i : i + 2], 16) for i in (0, 2, 4)], dtype=np.float32) / 255.0


@register("BiRefNetRMBG")
async def birefnet_rmbg(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    image = as_image(inputs["image"])
    model = inputs.get("model", "BiRefNet-general")
    await use(ctx, Weights("rmbg", model, vram_gb("rmbg", model)))
    sensitivity = float(inputs.get("sensitivity", 1.0))
    blur = int(inputs.get("mask_blur", 0))
    offset = int(inputs.get("mask_offset", 0))
    masks = np.stack([foreground_alpha(img[..., :3], sensitivity) for img in image])
    if blur > 0:
        masks = blur_planes(masks, blur * 2, 0.5)
    if offset:
        masks = grow_mask(masks, offset, tapered_corners=False)  # Max/MinFilter(3) per step
    if inputs.get("invert_output", False):
        masks = 1.0 - masks
    masks = np.round(np.clip(masks, 0.0, 1.0) * 255.0) / 255.0  # the pack goes through 8-bit
    masks = masks.astype(np.float32)
    rgb = image[..., :3]
    if inputs.get("background", "Alpha") == "Alpha":
        out = np.concatenate([rgb, masks[..., None]], axis=-1)
    else:
        colour = _hex_colour(inputs.get("background_color", "#222222"))
        a = masks[..., None]
        out = rgb * a + colour * (1.0 - a)
    mask_image = np.repeat(masks[..., None], 3, axis=-1)
    return NodeOutput((out.astype(np.float32), masks, mask_image))


# --- Florence-2 grounding --------------------------------------------------------------------


def grounding_box(text: str, width: int, height: int) -> list[float] | None:
    """A deterministic box for a phrase, covering 20–50% of the image; None for "nothing"."""
    phrase = text.strip().lower()
    if phrase in NO_MATCH_EXACT or any(word in phrase for word in NO_MATCH_WORDS):
        return None
    h = hashlib.sha256(phrase.encode()).digest()
    area = 0.2 + 0.3 * h[0] / 255.0
    aspect = 0.8 + 0.45 * h[1] / 255.0
    fw = min(0.95, math.sqrt(area) * aspect)
    fh = min(0.95, area / fw)
    x0 = (1.0 - fw) * h[2] / 255.0
    y0 = (1.0 - fh) * h[3] / 255.0
    box = [x0 * width, y0 * height, (x0 + fw) * width, (y0 + fh) * height]
    return [round(v, 2) for v in box]


def _loc_tokens(box: list[float], width: int, height: int) -> str:
    # Florence-2 writes coordinates as 1000-bin <loc_N> tokens.
    bins = [box[0] / width, box[1] / height, box[2] / width, box[3] / height]
    return "".join(f"<loc_{min(999, int(v * 1000))}>" for v in bins)


@register("Florence2Run")
async def florence2_run(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    image = as_image(inputs["image"])
    model: Florence2Model = inputs["florence2_model"]
    task = inputs.get("task", "region_caption")
    text = str(inputs.get("text_input", ""))
    if task not in TEXT_TASKS and text:
        raise NodeFailure(
            "ValueError",
            "Text input (prompt) is only supported for 'referring_expression_segmentation', "
            "'caption_to_phrase_grounding', and 'docvqa'",
        )
    await use(ctx, model.weights)
    fill_mask = bool(inputs.get("fill_mask", True))
    b, height, width = image.shape[:3]
    images, masks, captions, data = [], [], [], []
    for img in image:
        annotated = img[..., :3].copy()
        mask = np.zeros((height, width), dtype=np.float32)
        if task in BOX_TASKS:
            box = (
                grounding_box(text, width, height)
                if task == "caption_to_phrase_grounding"
                else None
            )
            boxes = [] if box is None else [box]
            labels = [text.strip()] * len(boxes)
            for x0, y0, x1, y1 in boxes:
                left, top = int(x0), int(y0)
                right, bottom = max(left + 1, int(x1)), max(top + 1, int(y1))
                mask[top:bottom, left:right] = 1.0
                _outline(annotated, left, top, right - 1, bottom - 1)
            caption = "".join(
                f"{lab}{_loc_tokens(bx, width, height)}"
                for lab, bx in zip(labels, boxes, strict=True)
            )
            data.append(
                {"bboxes": boxes, "labels": labels}
                if task == "caption_to_phrase_grounding"
                else boxes
            )
        else:
            caption = f"A fake caption of a {width}x{height} image."
        images.append(annotated)
        if fill_mask:
            masks.append(mask)
        captions.append(caption)
    out_image = np.stack(images).astype(np.float32)
    out_mask = np.stack(masks) if masks else np.zeros((1, 64, 64), dtype=np.float32)
    # The pack returns a plain string for a single image, a list for a batch.
    caption_out: str | list[str] = captions[0] if b == 1 else captions
    return NodeOutput((out_image, out_mask, caption_out, data))


def _outline(img: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> None:
    red = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    img[y0, x0 : x1 + 1] = red
    img[y1, x0 : x1 + 1] = red
    img[y0 : y1 + 1, x0] = red
    img[y0 : y1 + 1, x1] = red


# --- SAM 2 -----------------------------------------------------------------------------------


def _boxes_of(entry: Any) -> list[list[float]]:
    """One Florence data entry: a list of boxes (older packs) or {"bboxes": [...]} (newer)."""
    if isinstance(entry, dict):
        return [list(b) for b in entry.get("bboxes", [])]
    return [list(b) for b in entry or []]


@register("Florence2toCoordinates")
async def florence2_to_coordinates(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    data = inputs["data"]
    if isinstance(data, str):
        data = json.loads(data.replace("'", '"'))
    if not data:
        return NodeOutput((json.dumps([{"x": 0, "y": 0}]), []))
    per_image = [_boxes_of(entry) for entry in data]
    index = str(inputs.get("index", "0"))
    wanted = [int(i) for i in index.split(",")] if index.strip() else list(range(len(per_image[0])))
    images = per_image if inputs.get("batch", False) else per_image[:1]
    centers, bboxes = [], []
    for idx in wanted:
        for boxes in images:
            if 0 <= idx < len(boxes):  # since the pack's 2025-03 fix: absent indexes are skipped
                x0, y0, x1, y1 = boxes[idx]
                centers.append({"x": int((x0 + x1) / 2), "y": int((y0 + y1) / 2)})
                bboxes.append(boxes[idx])
    return NodeOutput((json.dumps(centers), bboxes))


def _flatten_boxes(bboxes: Any) -> list[list[float]]:
    """BBOX arrives as [box, ...] or [[box, ...], ...]; a box is four numbers."""
    out: list[list[float]] = []
    for item in bboxes or []:
        if len(item) == 4 and all(isinstance(v, int | float) for v in item):
            out.append([float(v) for v in item])
        else:
            out.extend(_flatten_boxes(item))
    return out


def ellipse_mask(height: int, width: int, box: list[float], edge_px: float = 3.0) -> np.ndarray:
    """A soft-edged ellipse inscribed in the box, 1 inside, fading to 0 over ~edge_px."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    rx, ry = max(abs(x1 - x0) / 2.0, 0.5), max(abs(y1 - y0) / 2.0, 0.5)
    x = (np.arange(width, dtype=np.float32) + 0.5)[None, :]
    y = (np.arange(height, dtype=np.float32) + 0.5)[:, None]
    r = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
    # 0 on the inscribed ellipse, 1 from edge_px inside it: the mask never leaves the box.
    return np.clip((1.0 - r) * min(rx, ry) / edge_px, 0.0, 1.0).astype(np.float32)


def _points(coordinates: str | None) -> list[tuple[float, float]]:
    if not coordinates:
        return []
    try:
        return [(float(p["x"]), float(p["y"])) for p in json.loads(coordinates.replace("'", '"'))]
    except (ValueError, TypeError, KeyError):
        return []


@register("Sam2Segmentation")
async def sam2_segmentation(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    model: Sam2Model = inputs["sam2_model"]
    image = as_image(inputs["image"])
    bboxes = inputs.get("bboxes")
    if model.segmentor == "automaskgenerator":
        raise NodeFailure("ValueError", "For automaskgenerator use Sam2AutoMaskSegmentation -node")
    if model.segmentor == "video" and bboxes is not None:
        raise NodeFailure("ValueError", "Video segmentor doesn't support bboxes")
    await use(ctx, model.weights)
    b, height, width = image.shape[:3]
    mask = np.zeros((height, width), dtype=np.float32)
    for box in _flatten_boxes(bboxes):
        mask = np.maximum(mask, ellipse_mask(height, width, box))
    radius = max(2.0, 0.05 * min(height, width))
    for px, py in _points(inputs.get("coordinates_positive")):
        box = [px - radius, py - radius, px + radius, py + radius]
        mask = np.maximum(mask, ellipse_mask(height, width, box))
    return NodeOutput((np.repeat(mask[None], b, axis=0),))

"""Image nodes of the fake ComfyUI, with ComfyUI's own semantics (nodes.py, nodes_mask.py,
nodes_compositing.py, nodes_post_processing.py, nodes_images.py) in numpy.

ImageScale and ImageInvert live in core_io.py (the server's own module).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .base import ExecContext, NodeOutput, register
from .pixels import as_image, as_mask, blur_planes, repeat_to_batch, resize_image, resize_mask


@register("ImageScaleToTotalPixels")
async def image_scale_to_total_pixels(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    image = as_image(inputs["image"])
    total = int(float(inputs.get("megapixels", 1.0)) * 1024 * 1024)
    scale = math.sqrt(total / (image.shape[2] * image.shape[1]))
    # Newer ComfyUI adds `resolution_steps`; 0.3.64's schema lacks it, so 1 unless given.
    steps = max(1, int(inputs.get("resolution_steps", 1)))
    width = max(steps, round(image.shape[2] * scale / steps) * steps)
    height = max(steps, round(image.shape[1] * scale / steps) * steps)
    return NodeOutput((resize_image(image, width, height, inputs.get("upscale_method", "area")),))


@register("ImageScaleBy")
async def image_scale_by(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    image = as_image(inputs["image"])
    scale = float(inputs.get("scale_by", 1.0))
    width, height = round(image.shape[2] * scale), round(image.shape[1] * scale)
    return NodeOutput((resize_image(image, width, height, inputs.get("upscale_method", "area")),))


def pad_for_outpaint(
    image: np.ndarray, left: int, top: int, right: int, bottom: int, feathering: int
) -> tuple[np.ndarray, np.ndarray]:
    """ComfyUI's ImagePadForOutpaint: new area 0.5 grey and mask 1; inside the original,
    the mask tapers quadratically from 1 to 0 over `feathering` px from each padded edge."""
    b, h, w, c = image.shape
    out = np.full((b, h + top + bottom, w + left + right, c), 0.5, dtype=np.float32)
    out[:, top : top + h, left : left + w] = image
    mask = np.ones((h + top + bottom, w + left + right), dtype=np.float32)
    inner = np.zeros((h, w), dtype=np.float32)
    if feathering > 0 and feathering * 2 < h and feathering * 2 < w:
        i = np.arange(h)[:, None]
        j = np.arange(w)[None, :]
        # Distance to each edge that was padded; an unpadded edge never feathers.
        dt = i if top else np.full_like(i, h)
        db = h - i if bottom else np.full_like(i, h)
        dl = j if left else np.full_like(j, w)
        dr = w - j if right else np.full_like(j, w)
        d = np.minimum(np.minimum(dt, db), np.minimum(dl, dr)).astype(np.float32)
        v = (feathering - d) / feathering
        inner = np.where(d < feathering, v * v, 0.0).astype(np.float32)
    mask[top : top + h, left : left + w] = inner
    return out, mask[None]


@register("ImagePadForOutpaint")
async def image_pad_for_outpaint(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    image, mask = pad_for_outpaint(
        as_image(inputs["image"]),
        int(inputs.get("left", 0)),
        int(inputs.get("top", 0)),
        int(inputs.get("right", 0)),
        int(inputs.get("bottom", 0)),
        int(inputs.get("feathering", 40)),
    )
    return NodeOutput((image, mask))


def composite(
    destination: np.ndarray,
    source: np.ndarray,
    x: int,
    y: int,
    mask: np.ndarray | None = None,
    resize_source: bool = False,
) -> np.ndarray:
    """ComfyUI's composite() with multiplier 1: out = dest·(1−m) + src·m over the source's
    rectangle at (x, y), clipped to the destination. Where m = 0 dest is kept exactly."""
    dest = destination.copy()
    b, dh, dw, dc = dest.shape
    # image_alpha_fix: match the source's channels to the destination's.
    if source.shape[-1] > dc:
        source = source[..., :dc]
    elif source.shape[-1] < dc:
        alpha = np.ones(source.shape[:-1] + (dc - source.shape[-1],), dtype=np.float32)
        source = np.concatenate([source, alpha], axis=-1)
    if resize_source:
        source = resize_image(source, dw, dh, "bilinear")
    source = repeat_to_batch(source, b)
    sh, sw = source.shape[1], source.shape[2]
    x = max(-sw, min(x, dw))
    y = max(-sh, min(y, dh))
    if mask is None:
        m = np.ones((b, sh, sw), dtype=np.float32)
    else:
        m = repeat_to_batch(resize_mask(as_mask(mask), sw, sh, "bilinear"), b)
    # Visible part of the source rectangle.
    sx0, sy0 = max(0, -x), max(0, -y)
    dx0, dy0 = max(0, x), max(0, y)
    vw = min(sw - sx0, dw - dx0)
    vh = min(sh - sy0, dh - dy0)
    if vw <= 0 or vh <= 0:
        return dest
    mm = m[:, sy0 : sy0 + vh, sx0 : sx0 + vw, None]
    region = dest[:, dy0 : dy0 + vh, dx0 : dx0 + vw]
    src = source[:, sy0 : sy0 + vh, sx0 : sx0 + vw]
    dest[:, dy0 : dy0 + vh, dx0 : dx0 + vw] = src * mm + region * (1.0 - mm)
    return dest


@register("ImageCompositeMasked")
async def image_composite_masked(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    mask = inputs.get("mask")
    out = composite(
        as_image(inputs["destination"]),
        as_image(inputs["source"]),
        int(inputs.get("x", 0)),
        int(inputs.get("y", 0)),
        None if mask is None else as_mask(mask),
        bool(inputs.get("resize_source", False)),
    )
    return NodeOutput((out,))


@register("JoinImageWithAlpha")
async def join_image_with_alpha(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    image = as_image(inputs["image"])
    alpha_mask = as_mask(inputs["alpha"])
    batch = min(len(image), len(alpha_mask))
    # ComfyUI: the MASK is "1 = masked away", so alpha = 1 − mask.
    alpha = 1.0 - resize_mask(alpha_mask, image.shape[2], image.shape[1])
    out = np.concatenate([image[:batch, ..., :3], alpha[:batch, ..., None]], axis=-1)
    return NodeOutput((out.astype(np.float32),))


@register("SplitImageWithAlpha")
async def split_image_with_alpha(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    image = as_image(inputs["image"])
    has_alpha = image.shape[-1] > 3
    alpha = image[..., 3] if has_alpha else np.ones(image.shape[:3], dtype=np.float32)
    return NodeOutput((image[..., :3].copy(), (1.0 - alpha).astype(np.float32)))


@register("GetImageSize")
async def get_image_size(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    image = as_image(inputs["image"])
    return NodeOutput((int(image.shape[2]), int(image.shape[1]), int(image.shape[0])))


@register("ImageBlur")
async def image_blur(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    image = as_image(inputs["image"])
    radius = int(inputs.get("blur_radius", 1))
    return NodeOutput((blur_planes(image, radius, float(inputs.get("sigma", 1.0))),))


@register("ImageSharpen")
async def image_sharpen(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    image = as_image(inputs["image"])
    radius = int(inputs.get("sharpen_radius", 1))
    if radius == 0:
        return NodeOutput((image.copy(),))
    alpha = float(inputs.get("alpha", 1.0))
    # ComfyUI's kernel is −10α·G with 10α + 1 added at the centre: (1 + 10α)·I − 10α·blur(I).
    blurred = blur_planes(image, radius, float(inputs.get("sigma", 1.0)))
    sharpened = (1.0 + 10.0 * alpha) * image - 10.0 * alpha * blurred
    return NodeOutput((np.clip(sharpened, 0.0, 1.0).astype(np.float32),))

"""Core image I/O nodes, behaving like ComfyUI's: LoadImage, SaveImage, PreviewImage,
SaveImageWebsocket, ImageScale, ImageInvert."""

from __future__ import annotations

import json
import os
import random
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps
from PIL.PngImagePlugin import PngInfo

from .base import ExecContext, NodeFailure, NodeOutput, register

_RESAMPLE = {
    "nearest-exact": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "bislerp": Image.Resampling.BICUBIC,
}


def _resolve(ctx: ExecContext, name: str) -> Path:
    """ComfyUI's annotated file names: "x.png", "sub/x.png", "x.png [output]"."""
    for suffix, base in ((" [output]", ctx.output_dir), (" [temp]", ctx.temp_dir),
                         (" [input]", ctx.input_dir)):
        if name.endswith(suffix):
            return base / name[: -len(suffix)]
    return ctx.input_dir / name


def _to_pil(image: np.ndarray) -> Image.Image:
    pixels = np.clip(255.0 * np.asarray(image, dtype=np.float32), 0, 255).astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    return Image.fromarray(pixels)


def _batch(images: Any) -> np.ndarray:
    array = np.asarray(images, dtype=np.float32)
    if array.ndim == 3 and array.shape[-1] not in (1, 3, 4):     # a MASK batch (B, H, W)
        return array
    if array.ndim == 3:
        array = array[None]
    return array


# --- LoadImage ---------------------------------------------------------------------------


@register("LoadImage")
async def load_image(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    path = _resolve(ctx, inputs["image"])
    if not path.is_file():
        raise NodeFailure("FileNotFoundError",
                          f"[Errno 2] No such file or directory: '{path.name}'")
    with Image.open(path) as opened:
        img = ImageOps.exif_transpose(opened) or opened
        if img.mode == "I":
            img = img.point(lambda i: i * (1 / 255))
        rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
        if "A" in img.getbands():
            alpha = np.asarray(img.getchannel("A"), dtype=np.float32) / 255.0
            mask = 1.0 - alpha                   # ComfyUI: mask 1 where transparent
        elif img.mode == "P" and "transparency" in img.info:
            alpha = np.asarray(img.convert("RGBA").getchannel("A"), dtype=np.float32) / 255.0
            mask = 1.0 - alpha
        else:
            mask = np.zeros((64, 64), dtype=np.float32)
    return NodeOutput((rgb[None], mask[None]))


# --- saving ------------------------------------------------------------------------------


def _compute_vars(prefix: str, width: int, height: int) -> str:
    now = time.localtime()
    for key, value in (("%width%", str(width)), ("%height%", str(height)),
                       ("%year%", str(now.tm_year)), ("%month%", f"{now.tm_mon:02}"),
                       ("%day%", f"{now.tm_mday:02}"), ("%hour%", f"{now.tm_hour:02}"),
                       ("%minute%", f"{now.tm_min:02}"), ("%second%", f"{now.tm_sec:02}")):
        prefix = prefix.replace(key, value)
    return prefix


def save_image_path(prefix: str, base: Path, width: int, height: int
                    ) -> tuple[Path, str, int, str]:
    """ComfyUI's get_save_image_path: (folder, file name stem, next counter, subfolder)."""
    if "%" in prefix:
        prefix = _compute_vars(prefix, width, height)
    normalized = os.path.normpath(prefix)
    subfolder = os.path.dirname(normalized)
    filename = os.path.basename(normalized)
    folder = (base / subfolder).resolve()
    if os.path.commonpath((str(base.resolve()), str(folder))) != str(base.resolve()):
        raise NodeFailure("Exception", "**** ERROR: Saving image outside the output folder is "
                          f"not allowed.\n full_output_folder: {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(re.escape(filename) + r"_(\d+)_")
    counters = [int(m.group(1)) for f in os.listdir(folder) if (m := pattern.match(f))]
    return folder, filename, max(counters, default=0) + 1, subfolder


def save_images(ctx: ExecContext, images: Any, prefix: str, kind: str,
                compress_level: int) -> list[dict[str, str]]:
    batch = _batch(images)
    base = ctx.output_dir if kind == "output" else ctx.temp_dir
    height, width = batch.shape[1], batch.shape[2]
    folder, filename, counter, subfolder = save_image_path(prefix, base, width, height)
    metadata = PngInfo()
    prompt = getattr(ctx, "prompt", None)
    extra = (getattr(ctx, "extra_data", None) or {}).get("extra_pnginfo")
    if prompt is not None:
        metadata.add_text("prompt", json.dumps(prompt))
    if isinstance(extra, dict):
        for key, value in extra.items():
            metadata.add_text(key, json.dumps(value))
    results = []
    for batch_number, image in enumerate(batch):
        file = f"{filename.replace('%batch_num%', str(batch_number))}_{counter:05}_.png"
        _to_pil(image).save(folder / file, pnginfo=metadata, compress_level=compress_level)
        results.append({"filename": file, "subfolder": subfolder, "type": kind})
        counter += 1
    return results


@register("SaveImage")
async def save_image(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    prefix = inputs.get("filename_prefix", "ComfyUI")
    return NodeOutput((), {"images": save_images(ctx, inputs["images"], prefix, "output", 4)})


@register("PreviewImage")
async def preview_image(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    suffix = "".join(random.choice("abcdefghijklmnopqrstupvxyz") for _ in range(5))
    images = save_images(ctx, inputs["images"], f"ComfyUI_temp_{suffix}", "temp", 1)
    return NodeOutput((), {"images": images})


@register("SaveImageWebsocket")
async def save_image_websocket(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    """Sends each image as a PNG preview frame (progress value = index); shows nothing."""
    batch = _batch(inputs["images"])
    for step, image in enumerate(batch):
        # The fake's context takes the frame format (the protocol's default is a JPEG preview).
        await ctx.progress(step, len(batch), _to_pil(image),  # type: ignore[call-arg]
                           preview_format="PNG", max_size=None)
    return NodeOutput(())


# --- simple image ops --------------------------------------------------------------------


def _resize_plane(plane: np.ndarray, width: int, height: int, method: str) -> np.ndarray:
    img = Image.fromarray(plane.astype(np.float32), mode="F")
    return np.asarray(img.resize((width, height), _RESAMPLE.get(method, Image.Resampling.BILINEAR)))


def common_upscale(images: np.ndarray, width: int, height: int, method: str,
                   crop: str) -> np.ndarray:
    old_h, old_w = images.shape[1], images.shape[2]
    if crop == "center" and old_w and old_h and width and height:
        old_aspect, new_aspect = old_w / old_h, width / height
        x = y = 0
        if old_aspect > new_aspect:
            x = round((old_w - old_w * (new_aspect / old_aspect)) / 2)
        elif old_aspect < new_aspect:
            y = round((old_h - old_h * (old_aspect / new_aspect)) / 2)
        images = images[:, y:old_h - y, x:old_w - x]
    out = np.empty((images.shape[0], height, width, images.shape[3]), dtype=np.float32)
    for b in range(images.shape[0]):
        for c in range(images.shape[3]):
            out[b, :, :, c] = _resize_plane(images[b, :, :, c], width, height, method)
    return np.clip(out, 0.0, 1.0) if method != "nearest-exact" else out


@register("ImageScale")
async def image_scale(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    image = _batch(inputs["image"])
    width, height = int(inputs["width"]), int(inputs["height"])
    if width == 0 and height == 0:
        return NodeOutput((image,))
    if width == 0:
        width = max(1, round(image.shape[2] * height / image.shape[1]))
    elif height == 0:
        height = max(1, round(image.shape[1] * width / image.shape[2]))
    method = inputs.get("upscale_method", "bilinear")
    return NodeOutput((common_upscale(image, width, height, method,
                                      inputs.get("crop", "disabled")),))


@register("ImageInvert")
async def image_invert(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    return NodeOutput((1.0 - _batch(inputs["image"]),))

"""Array helpers shared by the fake's image, mask, latent and segmentation nodes.

Shapes follow ComfyUI: IMAGE (B, H, W, C) float32 0..1 with C = 3 (or 4 for RGBA), MASK
(B, H, W) float32 0..1. Resizing goes through Pillow's float ("F") mode one channel at a time,
so no precision is lost to 8-bit and no torch is needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

# ComfyUI's upscale_method names → Pillow filters ("area" is a box average, like torch's).
RESAMPLE: dict[str, Image.Resampling] = {
    "nearest-exact": Image.Resampling.NEAREST,
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def as_image(value: Any) -> np.ndarray:
    """Any IMAGE-like value → float32 (B, H, W, C)."""
    arr = np.asarray(value, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise ValueError(f"expected an IMAGE of shape (B, H, W, C), got {arr.shape}")
    return arr


def as_mask(value: Any) -> np.ndarray:
    """Any MASK-like value ((H, W), (B, H, W) or (B, 1, H, W)) → float32 (B, H, W)."""
    arr = np.asarray(value, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 3:
        raise ValueError(f"expected a MASK of shape (B, H, W), got {arr.shape}")
    return arr


def repeat_to_batch(arr: np.ndarray, batch: int) -> np.ndarray:
    """Like comfy.utils.repeat_to_batch_size: tile or cut the first axis to `batch`."""
    if arr.shape[0] == batch:
        return arr
    if arr.shape[0] > batch:
        return arr[:batch]
    reps = -(-batch // arr.shape[0])
    return np.concatenate([arr] * reps, axis=0)[:batch]


def _resize_plane(plane: np.ndarray, width: int, height: int, method: str) -> np.ndarray:
    img = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F")
    out = img.resize((width, height), RESAMPLE.get(method, Image.Resampling.BILINEAR))
    return np.asarray(out, dtype=np.float32)


def resize_image(
    image: np.ndarray, width: int, height: int, method: str = "bilinear"
) -> np.ndarray:
    """(B, H, W, C) → (B, height, width, C); same size returns a copy untouched."""
    image = as_image(image)
    width, height = max(1, int(width)), max(1, int(height))
    if image.shape[1] == height and image.shape[2] == width:
        return image.copy()
    out = np.empty((image.shape[0], height, width, image.shape[3]), dtype=np.float32)
    for b in range(image.shape[0]):
        for c in range(image.shape[3]):
            out[b, :, :, c] = _resize_plane(image[b, :, :, c], width, height, method)
    # Lanczos/bicubic overshoot; ComfyUI's images stay in 0..1.
    return np.clip(out, 0.0, 1.0)


def resize_mask(mask: np.ndarray, width: int, height: int, method: str = "bilinear") -> np.ndarray:
    """(B, H, W) → (B, height, width); same size returns a copy untouched."""
    mask = as_mask(mask)
    if mask.shape[1] == height and mask.shape[2] == width:
        return mask.copy()
    out = np.stack([_resize_plane(m, width, height, method) for m in mask])
    return np.clip(out, 0.0, 1.0)


def center_crop_to_multiple(arr: np.ndarray, multiple: int = 8) -> np.ndarray:
    """Crop axes 1 and 2 to a multiple, centred: what ComfyUI's VAE.encode does to pixels."""
    h, w = arr.shape[1], arr.shape[2]
    nh, nw = (h // multiple) * multiple, (w // multiple) * multiple
    top, left = (h % multiple) // 2, (w % multiple) // 2
    return arr[:, top : top + nh, left : left + nw]


def gaussian_kernel_1d(size: int, sigma: float) -> np.ndarray:
    """ComfyUI's gaussian_kernel is defined on linspace(-1, 1) and is separable: this is
    one factor of it (normalised), so blur/sharpen match nodes_post_processing.py."""
    x = np.linspace(-1.0, 1.0, size, dtype=np.float64)
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return (g / g.sum()).astype(np.float32)


def blur_planes(arr: np.ndarray, radius: int, sigma: float) -> np.ndarray:
    """Gaussian blur over axes 1 and 2 of (B, H, W[, C]) with reflect padding."""
    if radius <= 0:
        return arr.copy()
    kernel = gaussian_kernel_1d(radius * 2 + 1, sigma)
    pad = [(0, 0), (radius, radius), (radius, radius)] + [(0, 0)] * (arr.ndim - 3)
    mode = "reflect" if min(arr.shape[1], arr.shape[2]) > radius else "edge"
    padded = np.pad(arr.astype(np.float32), pad, mode=mode)
    h, w = arr.shape[1], arr.shape[2]
    rows = sum(kernel[i] * padded[:, i : i + h] for i in range(kernel.size))
    return sum(kernel[i] * rows[:, :, i : i + w] for i in range(kernel.size)).astype(np.float32)


def to_pil(image_hwc: np.ndarray) -> Image.Image:
    """One (H, W, C) image → an 8-bit RGB or RGBA Pillow image."""
    data = np.clip(np.asarray(image_hwc) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if data.shape[-1] == 1:
        data = np.repeat(data, 3, axis=-1)
    return Image.fromarray(data, "RGBA" if data.shape[-1] == 4 else "RGB")


def thumbnail(image_hwc: np.ndarray, size: int = 64) -> np.ndarray:
    """Scale one (H, W, C) image so its longer side is `size` (for sampler previews)."""
    h, w = image_hwc.shape[:2]
    scale = size / max(h, w)
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    return resize_image(image_hwc[None], tw, th, "area")[0]

"""Latents, the VAE and the samplers of the fake ComfyUI.

LATENT = {"samples": (B, 16, H/8, W/8)} like ComfyUI, plus fake-only keys:
"pixels" (B, H, W, 3), the image the latent stands for (set by VAEEncode and by the samplers,
so VAEDecode gives it back exactly), and "noise_mask" (B, H, W), full-resolution, 1 = resample.

A sampler "generates" a smooth pattern whose colours come from a hash of seed + positive text,
tints it with every reference image of the conditioning (each one changes the result), blends
it with the latent's pixels by `denoise`, and keeps the latent's pixels exactly where the noise
mask is 0. Deterministic, numpy only, fast.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from typing import Any

import numpy as np
from PIL import Image

from .base import ExecContext, NodeOutput, register
from .models import Conditioning, DiffusionModel, Vae, use, use_model
from .pixels import (
    as_image,
    as_mask,
    center_crop_to_multiple,
    repeat_to_batch,
    resize_image,
    resize_mask,
    thumbnail,
)

LATENT_CHANNELS = 16
SCALE = 8  # pixels per latent cell
REFERENCE_WEIGHT = 0.35  # how much each reference image pulls the output towards itself
PREVIEW_SIZE = 64

# --- latents and the VAE ---------------------------------------------------------------------


def encode_pixels(pixels: np.ndarray) -> np.ndarray:
    """(B, H, W, C), H and W multiples of 8 → samples (B, 16, H/8, W/8): block means of RGB."""
    b, h, w = pixels.shape[:3]
    samples = np.zeros((b, LATENT_CHANNELS, h // SCALE, w // SCALE), dtype=np.float32)
    blocks = pixels[..., :3].reshape(b, h // SCALE, SCALE, w // SCALE, SCALE, 3).mean(axis=(2, 4))
    samples[:, :3] = blocks.transpose(0, 3, 1, 2) - 0.5
    return samples


def decode_samples(samples: np.ndarray) -> np.ndarray:
    """Inverse of encode_pixels up to blockiness; an empty latent decodes to mid grey."""
    rgb = np.clip(samples[:, :3] + 0.5, 0.0, 1.0).transpose(0, 2, 3, 1)
    return np.repeat(np.repeat(rgb, SCALE, axis=1), SCALE, axis=2).astype(np.float32)


def latent_size(latent: dict[str, Any]) -> tuple[int, int, int]:
    """(batch, height, width) in pixels."""
    samples = latent["samples"]
    return samples.shape[0], samples.shape[2] * SCALE, samples.shape[3] * SCALE


def latent_pixels(latent: dict[str, Any]) -> np.ndarray:
    """The image a latent stands for, at its pixel size."""
    batch, height, width = latent_size(latent)
    pixels = latent.get("pixels")
    if pixels is not None and pixels.shape[1:3] == (height, width):
        return repeat_to_batch(pixels[..., :3], batch)
    return decode_samples(latent["samples"])


def pixels_latent(pixels: np.ndarray) -> dict[str, Any]:
    pixels = center_crop_to_multiple(as_image(pixels)[..., :3])
    return {"samples": encode_pixels(pixels), "pixels": np.ascontiguousarray(pixels)}


def full_res_mask(mask: Any, batch: int, height: int, width: int) -> np.ndarray:
    return repeat_to_batch(resize_mask(as_mask(mask), width, height), batch)


def _empty_latent(inputs: dict[str, Any], channels: int) -> NodeOutput:
    width, height = int(inputs.get("width", 1024)), int(inputs.get("height", 1024))
    batch = int(inputs.get("batch_size", 1))
    samples = np.zeros((batch, channels, height // SCALE, width // SCALE), dtype=np.float32)
    return NodeOutput(({"samples": samples},))


@register("EmptySD3LatentImage")
async def empty_sd3_latent_image(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    return _empty_latent(inputs, LATENT_CHANNELS)


@register("EmptyLatentImage")
async def empty_latent_image(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    """SD1.5's 4-channel latent (the recorded preview trace's graph)."""
    return _empty_latent(inputs, 4)


@register("VAEEncode")
async def vae_encode(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    vae: Vae = inputs["vae"]
    await use(ctx, vae.weights)
    return NodeOutput((pixels_latent(inputs["pixels"]),))


@register("VAEDecode")
async def vae_decode(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    vae: Vae = inputs["vae"]
    await use(ctx, vae.weights)
    return NodeOutput((latent_pixels(inputs["samples"]).copy(),))


@register("SetLatentNoiseMask")
async def set_latent_noise_mask(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    latent = dict(inputs["samples"])
    batch, height, width = latent_size(latent)
    latent["noise_mask"] = full_res_mask(inputs["mask"], batch, height, width)
    return NodeOutput((latent,))


@register("InpaintModelConditioning")
async def inpaint_model_conditioning(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    vae: Vae = inputs["vae"]
    await use(ctx, vae.weights)
    pixels = as_image(inputs["pixels"])
    # ComfyUI resizes the mask to the pixels first, then both are cropped to multiples of 8.
    mask = resize_mask(as_mask(inputs["mask"]), pixels.shape[2], pixels.shape[1])
    latent = pixels_latent(pixels)
    if inputs.get("noise_mask", True):
        batch = latent["samples"].shape[0]
        latent["noise_mask"] = repeat_to_batch(center_crop_to_multiple(mask), batch)
    positive: Conditioning = inputs["positive"]
    negative: Conditioning = inputs["negative"]
    return NodeOutput((_mark_inpaint(positive), _mark_inpaint(negative), latent))


def _mark_inpaint(cond: Conditioning) -> Conditioning:
    return replace(cond, inpaint=True)


# --- the simulated generation ----------------------------------------------------------------


def _hash_params(seed: int, text: str, index: int) -> bytes:
    return hashlib.sha256(f"{seed}\x1f{index}\x1f{text}".encode()).digest()


def pattern(seed: int, text: str, height: int, width: int, index: int = 0) -> np.ndarray:
    """A smooth (H, W, 3) gradient with a soft wave, colours and direction from the hash."""
    h = _hash_params(seed, text, index)
    c1 = np.array(list(h[0:3]), dtype=np.float32) / 255.0
    c2 = np.array(list(h[3:6]), dtype=np.float32) / 255.0
    angle = h[6] / 255.0 * 2 * math.pi
    freq = 1 + h[7] % 4
    phase = h[8] / 255.0 * 2 * math.pi
    x = ((np.arange(width, dtype=np.float32) + 0.5) / width)[None, :]
    y = ((np.arange(height, dtype=np.float32) + 0.5) / height)[:, None]
    along = x * math.cos(angle) + y * math.sin(angle)
    across = -x * math.sin(angle) + y * math.cos(angle)
    along = (along - along.min()) / max(float(along.max() - along.min()), 1e-6)
    wave = 0.5 + 0.5 * np.sin(2 * math.pi * freq * across + phase)
    t = np.clip(0.75 * along + 0.25 * wave, 0.0, 1.0)[..., None]
    return (c1 * (1.0 - t) + c2 * t).astype(np.float32)


def with_references(image: np.ndarray, cond: Conditioning) -> np.ndarray:
    """Pull the image towards each reference in turn: its mean colour always, and its
    content too when the VAE was connected (reference latents keep structure)."""
    height, width = image.shape[:2]
    out = image
    for ref in cond.images:
        rgb = ref[..., :3]
        tint = rgb.mean(axis=(0, 1, 2)).astype(np.float32)
        if cond.has_vae:
            content = resize_image(rgb[:1], width, height, "bilinear")[0]
            contribution = 0.5 * content + 0.5 * tint
        else:
            contribution = np.broadcast_to(tint, image.shape)
        out = out * (1.0 - REFERENCE_WEIGHT) + contribution * REFERENCE_WEIGHT
    return out.astype(np.float32)


def generate(seed: int, positive: Conditioning, batch: int, height: int, width: int) -> np.ndarray:
    """The fully denoised (B, H, W, 3) image for this seed, prompt and references."""
    images = [
        with_references(pattern(seed, positive.text, height, width, index=i), positive)
        for i in range(batch)
    ]
    return np.stack(images).astype(np.float32)


async def run_sampler(
    ctx: ExecContext,
    inputs: dict[str, Any],
    *,
    seed: int,
    steps: int,
    denoise: float,
) -> NodeOutput:
    """Shared by the three samplers: progress per step (with a preview unless previews are off),
    then the result."""
    model: DiffusionModel = inputs["model"]
    positive: Conditioning = inputs["positive"]
    latent: dict[str, Any] = inputs["latent_image"]
    await use_model(ctx, model)
    batch, height, width = latent_size(latent)
    source = latent_pixels(latent)
    mask = latent.get("noise_mask")
    mask = None if mask is None else full_res_mask(mask, batch, height, width)

    final = generate(seed, positive, batch, height, width)
    final = final * denoise + source * (1.0 - denoise) if denoise < 1.0 else final
    if mask is not None:
        m = mask[..., None]
        final = source * (1.0 - m) + final * m

    small_source, small_final = thumbnail(source[0]), thumbnail(final[0])
    for step in range(1, steps + 1):
        t = step / steps
        # ComfyUI has no latent previewer with `--preview-method none`: progress only.
        preview = _preview_image(small_source * (1.0 - t) + small_final * t) if ctx.previews \
            else None
        await ctx.progress(step, steps, preview)

    out = dict(latent)  # like ComfyUI: the noise mask and other keys ride along
    out["samples"] = encode_pixels(final)
    out["pixels"] = final.astype(np.float32)
    return NodeOutput((out,))


def _preview_image(image_hwc: np.ndarray) -> Image.Image:
    data = np.clip(image_hwc * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(data, "RGB")


@register("KSampler")
async def ksampler(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    return await run_sampler(
        ctx,
        inputs,
        seed=int(inputs.get("seed", 0)),
        steps=int(inputs.get("steps", 20)),
        denoise=float(inputs.get("denoise", 1.0)),
    )


@register("LanPaint_KSampler")
async def lanpaint_ksampler(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    # LanPaint's inner Langevin steps do not add progress ticks; the outer steps do.
    return await run_sampler(
        ctx,
        inputs,
        seed=int(inputs.get("seed", 0)),
        steps=int(inputs.get("steps", 30)),
        denoise=float(inputs.get("denoise", 1.0)),
    )


@register("KSamplerAdvanced")
async def ksampler_advanced(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    steps = int(inputs.get("steps", 20))
    start = int(inputs.get("start_at_step", 0))
    end = min(int(inputs.get("end_at_step", 10000)), steps)
    run = end - start
    if run <= 0:
        return NodeOutput((dict(inputs["latent_image"]),))  # nothing to sample: latent as is
    return await run_sampler(
        ctx,
        inputs,
        seed=int(inputs.get("noise_seed", 0)),
        steps=run,
        denoise=run / steps,
    )

"""Model loaders, model patches and text encoders of the fake ComfyUI.

MODEL / CLIP / VAE / CONDITIONING / FL2MODEL / SAM2MODEL are small frozen descriptions. Every
loader accounts its weights through `ctx.load_model`, and every node that *uses* a model
accounts it again (a no-op while it is resident), because real ComfyUI moves weights to the
GPU when they are used: a cached loader output after a mode switch still costs a reload.

VRAM sizes (one table, `MODEL_VRAM_GB`, by file name; folder defaults for other names) are
chosen so a mode's resident set matches the operations guide: generate / edit / inpaint /
outpaint ≈ 30 GB (UNet 20 + sampling workspace 0.95, text encoder 8.8, VAE 0.25), region edit
≈ 33 GB (+ Florence-2-base 1.2 + SAM 2.1 base+ 1.8), background removal ≈ 3 GB; the GGUF Q4
UNets are 10 GB less ("~10 GB instead of ~20 GB per UNet"). Multi-ref's 32 GB peak is transient
VAE-encode workspace that ComfyUI frees after the run; it is not modelled as a resident model.

The ComfyUI-GGUF loaders (UnetLoaderGGUF, UnetLoaderGGUFAdvanced, CLIPLoaderGGUF) load like
the core ones; CLIPLoaderGGUF also takes a `.safetensors` encoder (recorded).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .base import ExecContext, NodeFailure, NodeOutput, register
from .pixels import as_image

log = logging.getLogger(__name__)

UNET_WEIGHTS_GB = 20.0
SAMPLING_WORKSPACE_GB = 0.95  # activations at ~1 MP, held while the UNet samples
UNET_GB = UNET_WEIGHTS_GB + SAMPLING_WORKSPACE_GB
GGUF_UNET_GB = 10.0 + SAMPLING_WORKSPACE_GB  # Q4_K_M: 10 GB less than fp8 (the guide)
TEXT_ENCODER_GB = 8.8
GGUF_TEXT_ENCODER_GB = 4.7  # Qwen2.5-VL-7B Q4_K_M: its file size
VAE_GB = 0.25
CHECKPOINT_GB = 6.9
FLORENCE2_GB = {"base": 1.2, "large": 1.8}
SAM2_GB = {"tiny": 1.2, "small": 1.4, "base_plus": 1.8, "large": 2.4}
BIREFNET_GB = 3.0  # weights + 1024² working set, "~3 GB alone" in the guide
BIREFNET_LITE_GB = 1.5

# VRAM per model file: the studio's default files (workflows/, the shared README).
MODEL_VRAM_GB: dict[str, float] = {
    "qwen_image_2512_fp8_e4m3fn.safetensors": UNET_GB,
    "qwen_image_2512_fp8_e4m3fn_scaled_comfyui_4steps_v1.0.safetensors": UNET_GB,
    "qwen_image_edit_2511_fp8mixed.safetensors": UNET_GB,
    "qwen-image-2512-Q4_K_M.gguf": GGUF_UNET_GB,
    "qwen-image-edit-2511-Q4_K_M.gguf": GGUF_UNET_GB,
    "qwen_2.5_vl_7b_fp8_scaled.safetensors": TEXT_ENCODER_GB,
    "Qwen2.5-VL-7B-Instruct-Q4_K_M.gguf": GGUF_TEXT_ENCODER_GB,
    "qwen_image_vae.safetensors": VAE_GB,
}

SAFETENSORS_ERROR = "safetensors._safetensors_rust.SafetensorError"
HEADER_TOO_SMALL = "Error while deserializing header: header too small"
# What a GGUF loader says about an empty `.gguf` (fixtures/comfy/gguf/trace_gguf.json).
EMPTY_GGUF_ERROR = ("ValueError", "cannot mmap an empty file")


@dataclass(frozen=True)
class Weights:
    """One model file as the fake's VRAM accounting sees it."""

    folder: str
    name: str
    vram_gb: float


@dataclass(frozen=True)
class DiffusionModel:
    """MODEL: the UNet plus what was patched onto it (LoRAs, shift, CFG norm)."""

    weights: Weights
    loras: tuple[tuple[Weights, float], ...] = ()
    patches: tuple[str, ...] = ()


@dataclass(frozen=True)
class TextEncoder:
    """CLIP."""

    weights: Weights
    type: str = "qwen_image"


@dataclass(frozen=True)
class Vae:
    """VAE; weights None is ComfyUI's built-in `pixel_space` (no file)."""

    weights: Weights | None


@dataclass(frozen=True)
class Conditioning:
    """CONDITIONING: the text, the reference images (image1..image3 as connected) and whether
    a VAE was given (reference latents), plus the inpaint flag InpaintModelConditioning sets."""

    text: str
    encoder: str = ""
    images: tuple[np.ndarray, ...] = field(default=(), compare=False, repr=False)
    has_vae: bool = False
    inpaint: bool = False


@dataclass(frozen=True)
class Florence2Model:
    """FL2MODEL."""

    weights: Weights
    precision: str = "fp16"
    attention: str = "sdpa"


@dataclass(frozen=True)
class Sam2Model:
    """SAM2MODEL."""

    weights: Weights
    segmentor: str = "single_image"
    device: str = "cuda"
    precision: str = "fp16"


def vram_gb(folder: str, name: str) -> float:
    """How much VRAM the fake accounts for a model file (see the module docstring)."""
    if name in MODEL_VRAM_GB:
        return MODEL_VRAM_GB[name]
    n = name.lower()
    if folder in ("diffusion_models", "unet", "unet_gguf"):
        return GGUF_UNET_GB if n.endswith(".gguf") or "q4" in n else UNET_GB
    if folder in ("text_encoders", "clip", "clip_gguf"):
        return GGUF_TEXT_ENCODER_GB if n.endswith(".gguf") else TEXT_ENCODER_GB
    if folder == "vae":
        return VAE_GB
    if folder == "loras":
        return 0.0  # merged into the UNet's weights in place
    if folder == "checkpoints":
        return CHECKPOINT_GB
    if folder == "LLM":
        return FLORENCE2_GB["large"] if "large" in n else FLORENCE2_GB["base"]
    if folder == "sam2":
        for size in ("base_plus", "large", "small", "tiny"):
            if size in n:
                return SAM2_GB[size]
        return SAM2_GB["base_plus"]
    if folder == "rmbg":
        return BIREFNET_LITE_GB if "lite" in n else BIREFNET_GB
    return 1.0


def empty_file_failure(name: str) -> NodeFailure:
    """The recorded error of loading an empty (or garbage) model file: gguf's mmap error for
    `.gguf`, safetensors' header error otherwise (whichever loader opens it)."""
    if name.lower().endswith(".gguf"):
        return NodeFailure(*EMPTY_GGUF_ERROR)
    return NodeFailure(SAFETENSORS_ERROR, HEADER_TOO_SMALL)


async def load_file(ctx: ExecContext, folder: str, name: str) -> Weights:
    """Open a model file like ComfyUI: missing → FileNotFoundError, a file whose name says
    "broken" → the recorded load error (`empty_file_failure`); otherwise account it in VRAM.
    (Files marked empty on the fake fail in `ctx.load_model` the same way.)"""
    if name not in ctx.model_files(folder):
        raise NodeFailure(
            "FileNotFoundError", f"Model in folder '{folder}' with filename '{name}' not found."
        )
    if "broken" in name.lower():
        raise empty_file_failure(name)
    weights = Weights(folder, name, vram_gb(folder, name))
    await ctx.load_model(weights.folder, weights.name, weights.vram_gb)
    return weights


async def use(ctx: ExecContext, *items: Weights | None) -> None:
    """Make sure the weights a node computes with are resident (reloads after an eviction)."""
    for weights in items:
        if weights is not None:
            await ctx.load_model(weights.folder, weights.name, weights.vram_gb)


async def use_model(ctx: ExecContext, model: DiffusionModel) -> None:
    await use(ctx, model.weights, *(w for w, _ in model.loras))


# --- loaders ---------------------------------------------------------------------------------


@register("UNETLoader")
async def unet_loader(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    weights = await load_file(ctx, "diffusion_models", inputs["unet_name"])
    dtype = inputs.get("weight_dtype", "default")
    patches = () if dtype == "default" else (f"dtype={dtype}",)
    return NodeOutput((DiffusionModel(weights, patches=patches),))


@register("CLIPLoader")
async def clip_loader(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    weights = await load_file(ctx, "text_encoders", inputs["clip_name"])
    return NodeOutput((TextEncoder(weights, inputs.get("type", "stable_diffusion")),))


@register("UnetLoaderGGUF", "UnetLoaderGGUFAdvanced")
async def unet_loader_gguf(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    weights = await load_file(ctx, "unet_gguf", inputs["unet_name"])
    patches = tuple(f"{key}={inputs[key]}" for key in ("dequant_dtype", "patch_dtype")
                    if inputs.get(key, "default") != "default")
    return NodeOutput((DiffusionModel(weights, patches=patches),))


@register("CLIPLoaderGGUF")
async def clip_loader_gguf(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    # It lists (and loads) both folders: `.gguf` encoders and the core `.safetensors` ones.
    name = inputs["clip_name"]
    folder = "clip_gguf" if name in ctx.model_files("clip_gguf") else "text_encoders"
    weights = await load_file(ctx, folder, name)
    return NodeOutput((TextEncoder(weights, inputs.get("type", "stable_diffusion")),))


@register("VAELoader")
async def vae_loader(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    name = inputs["vae_name"]
    if name == "pixel_space":
        return NodeOutput((Vae(None),))
    return NodeOutput((Vae(await load_file(ctx, "vae", name)),))


@register("LoraLoaderModelOnly")
async def lora_loader_model_only(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    model: DiffusionModel = inputs["model"]
    strength = float(inputs.get("strength_model", 1.0))
    if strength == 0:
        return NodeOutput((model,))  # ComfyUI skips loading a LoRA at strength 0
    weights = await load_file(ctx, "loras", inputs["lora_name"])
    return NodeOutput((replace(model, loras=(*model.loras, (weights, strength))),))


@register("CheckpointLoaderSimple")
async def checkpoint_loader(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    weights = await load_file(ctx, "checkpoints", inputs["ckpt_name"])
    return NodeOutput((DiffusionModel(weights), TextEncoder(weights, "checkpoint"), Vae(weights)))


@register("DownloadAndLoadFlorence2Model")
async def florence2_loader(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    repo_id = inputs.get("model", "microsoft/Florence-2-base")
    name = repo_id.rsplit("/", 1)[-1]  # the pack downloads into models/LLM/<name>
    weights = Weights("LLM", name, vram_gb("LLM", name))
    await use(ctx, weights)
    model = Florence2Model(
        weights, inputs.get("precision", "fp16"), inputs.get("attention", "sdpa")
    )
    return NodeOutput((model,))


@register("DownloadAndLoadSAM2Model")
async def sam2_loader(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    device = inputs.get("device", "cuda")
    precision = inputs.get("precision", "fp16")
    if precision != "fp32" and device == "cpu":
        raise NodeFailure("ValueError", "fp16 and bf16 are not supported on cpu")
    name = inputs["model"]
    weights = Weights("sam2", name, vram_gb("sam2", name))
    await use(ctx, weights)
    return NodeOutput(
        (Sam2Model(weights, inputs.get("segmentor", "single_image"), device, precision),)
    )


# --- model patches (pass the model through, remembering the patch) ---------------------------


@register("ModelSamplingAuraFlow")
async def model_sampling_aura_flow(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    model: DiffusionModel = inputs["model"]
    shift = float(inputs.get("shift", 1.73))
    return NodeOutput((replace(model, patches=(*model.patches, f"shift={shift:g}")),))


@register("CFGNorm")
async def cfg_norm(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    model: DiffusionModel = inputs["model"]
    strength = float(inputs.get("strength", 1.0))
    return NodeOutput((replace(model, patches=(*model.patches, f"cfgnorm={strength:g}")),))


# --- text encoders ---------------------------------------------------------------------------


@register("CLIPTextEncode")
async def clip_text_encode(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    clip: TextEncoder = inputs["clip"]
    await use(ctx, clip.weights)
    return NodeOutput((Conditioning(text=str(inputs.get("text", "")), encoder=clip.weights.name),))


@register("TextEncodeQwenImageEditPlus")
async def text_encode_qwen_image_edit_plus(ctx: ExecContext, inputs: dict[str, Any]) -> NodeOutput:
    clip: TextEncoder = inputs["clip"]
    vae: Vae | None = inputs.get("vae")
    images = tuple(
        as_image(inputs[slot])
        for slot in ("image1", "image2", "image3")
        if inputs.get(slot) is not None
    )
    await use(ctx, clip.weights)
    if vae is not None and images:
        await use(ctx, vae.weights)  # the reference images are VAE-encoded as reference latents
    cond = Conditioning(
        text=str(inputs.get("prompt", "")),
        encoder=clip.weights.name,
        images=images,
        has_vae=vae is not None,
    )
    return NodeOutput((cond,))

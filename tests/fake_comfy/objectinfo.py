"""The fake's `/object_info`: the recorded real one, with combo lists filled from its folders.

The recording was taken with empty model folders; the real server re-reads its folders on
every `/object_info` and every `/prompt`, so the fake does the same from its own listing.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "comfy"

# (class, input) → model folder whose file names the combo lists.
MODEL_INPUTS: dict[tuple[str, str], str] = {
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("DualCLIPLoader", "clip_name1"): "text_encoders",
    ("DualCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name1"): "text_encoders",
    ("TripleCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name3"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name1"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name2"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name3"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name4"): "text_encoders",
    ("VAELoader", "vae_name"): "vae",
    ("LoraLoader", "lora_name"): "loras",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
    ("CreateHookLora", "lora_name"): "loras",
    ("CreateHookLoraModelOnly", "lora_name"): "loras",
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    ("CheckpointLoader", "ckpt_name"): "checkpoints",
    ("unCLIPCheckpointLoader", "ckpt_name"): "checkpoints",
    ("ImageOnlyCheckpointLoader", "ckpt_name"): "checkpoints",
    ("CreateHookModelAsLora", "ckpt_name"): "checkpoints",
    ("CreateHookModelAsLoraModelOnly", "ckpt_name"): "checkpoints",
    ("ControlNetLoader", "control_net_name"): "controlnet",
    ("DiffControlNetLoader", "control_net_name"): "controlnet",
    ("StyleModelLoader", "style_model_name"): "style_models",
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("GLIGENLoader", "gligen_name"): "gligen",
    ("HypernetworkLoader", "hypernetwork_name"): "hypernetworks",
    ("UpscaleModelLoader", "model_name"): "upscale_models",
    ("PhotoMakerLoader", "photomaker_model_name"): "photomaker",
    ("ModelPatchLoader", "name"): "model_patches",
    ("AudioEncoderLoader", "audio_encoder_name"): "audio_encoders",
}
# The ComfyUI-GGUF pack's loaders (fixtures/comfy/gguf/): the UNet ones list `unet_gguf`; the
# CLIP ones list every text encoder, `sorted(get_filename_list("clip") + …("clip_gguf"))`.
GGUF_MODEL_INPUTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("UnetLoaderGGUF", "unet_name"): ("unet_gguf",),
    ("UnetLoaderGGUFAdvanced", "unet_name"): ("unet_gguf",),
    ("CLIPLoaderGGUF", "clip_name"): ("text_encoders", "clip_gguf"),
    **{("DualCLIPLoaderGGUF", f"clip_name{i}"): ("text_encoders", "clip_gguf") for i in (1, 2)},
    **{("TripleCLIPLoaderGGUF", f"clip_name{i}"): ("text_encoders", "clip_gguf")
       for i in (1, 2, 3)},
    **{("QuadrupleCLIPLoaderGGUF", f"clip_name{i}"): ("text_encoders", "clip_gguf")
       for i in (1, 2, 3, 4)},
}
# Inputs listing image files in ComfyUI's input folder (top level only, like the real one).
IMAGE_INPUTS: tuple[tuple[str, str], ...] = (("LoadImage", "image"), ("LoadImageMask", "image"))
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@cache
def recorded_object_info() -> dict[str, Any]:
    """The real server's schemas (parsed once per process; never mutate the result)."""
    return _read_json("object_info.json")


@cache
def recorded_gguf_object_info() -> dict[str, Any]:
    """The GGUF pack's 6 classes as recorded (`GET /object_info/<Class>`, merged)."""
    return _read_json("gguf/object_info_gguf.json")


@cache
def recorded_misc() -> dict[str, Any]:
    return _read_json("trace_misc.json")


def _read_json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def _with_options(spec: list[Any], options: list[str]) -> list[Any]:
    if spec and spec[0] == "COMBO":
        extra = dict(spec[1]) if len(spec) > 1 else {}
        extra["options"] = options
        return ["COMBO", extra, *spec[2:]]
    return [options, *spec[1:]]


def build_object_info(
    models: Mapping[str, Iterable[str]],
    input_images: Iterable[str],
    hidden: Iterable[str] = (),
    *,
    gguf: bool = True,
) -> dict[str, Any]:
    """A fresh `/object_info` dict. Only the patched schemas are copies; the rest are shared.
    `gguf`: the ComfyUI-GGUF pack is installed (its classes come after the recorded ones)."""
    info = dict(recorded_object_info())
    if gguf:
        info.update(recorded_gguf_object_info())
    for name in hidden:
        info.pop(name, None)
    images = sorted(input_images)
    patches: list[tuple[tuple[str, str], list[str]]] = [(key, images) for key in IMAGE_INPUTS]
    for key, folder in MODEL_INPUTS.items():
        files = list(models.get(folder, ()))
        if key == ("VAELoader", "vae_name"):
            files.append("pixel_space")   # the real VAELoader always offers it
        patches.append((key, files))
    for key, folders in GGUF_MODEL_INPUTS.items():
        files = [f for folder in folders for f in models.get(folder, ())]
        patches.append((key, sorted(files) if len(folders) > 1 else files))
    copied: set[str] = set()
    for (cls, input_name), options in patches:
        if cls not in info:
            continue
        if cls not in copied:
            info[cls] = copy.deepcopy(info[cls])
            copied.add(cls)
        for category in ("required", "optional"):
            inputs = info[cls]["input"].get(category, {})
            if input_name in inputs:
                inputs[input_name] = _with_options(inputs[input_name], options)
    return info


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)

"""Roles: how the studio finds the nodes it fills in a template, never by node id.

A node takes a role when its title (`_meta.title`, kept by ComfyUI on export) contains
`#<role>`, e.g. "Positive prompt #prompt". Each role has named fields; a field lists the input
names it may set. The binder sets every listed input the node has, and it is an error if the
node has none of them (so a template whose #prompt node is not a text encoder fails loudly).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROLE_PATTERN = re.compile(r"#([a-z][a-z0-9_]*)")
# `#param:<input>` exposes one input of its node by that input's name (workflow apps).
PARAM_PATTERN = re.compile(r"#param:([A-Za-z_][A-Za-z0-9_]*)")
PARAM_PREFIX = "param:"


@dataclass(frozen=True)
class RoleSpec:
    description: str
    fields: dict[str, tuple[str, ...]]


ROLES: dict[str, RoleSpec] = {
    "unet": RoleSpec("diffusion model loader (UNETLoader)", {"name": ("unet_name",)}),
    "clip": RoleSpec("text encoder loader (CLIPLoader)", {"name": ("clip_name",)}),
    "vae": RoleSpec("VAE loader (VAELoader)", {"name": ("vae_name",)}),
    "shift": RoleSpec("model sampling shift (ModelSamplingAuraFlow)", {"shift": ("shift",)}),
    "prompt": RoleSpec(
        "positive text (CLIPTextEncode or TextEncodeQwenImageEditPlus)",
        {"text": ("text", "prompt")},
    ),
    "negative": RoleSpec("negative text (same classes as #prompt)", {"text": ("text", "prompt")}),
    "latent": RoleSpec(
        "empty latent (EmptySD3LatentImage)",
        {"width": ("width",), "height": ("height",), "batch": ("batch_size",)},
    ),
    "sampler": RoleSpec(
        "sampler (KSampler, LanPaint_KSampler, KSamplerAdvanced)",
        {
            "seed": ("seed", "noise_seed"),
            "steps": ("steps",),
            "cfg": ("cfg",),
            "denoise": ("denoise",),
            "sampler_name": ("sampler_name",),
            "scheduler": ("scheduler",),
        },
    ),
    "seed": RoleSpec("a node with a seed input (KSampler, RandomNoise, …)",
                     {"seed": ("seed", "noise_seed")}),
    "steps": RoleSpec("a node with a steps input (KSampler, BasicScheduler, …)",
                      {"steps": ("steps",)}),
    "image": RoleSpec("input image (LoadImage)", {"file": ("image",)}),
    "image1": RoleSpec("reference image 1 (LoadImage)", {"file": ("image",)}),
    "image2": RoleSpec("reference image 2 (LoadImage; pruned when unused)", {"file": ("image",)}),
    "image3": RoleSpec("reference image 3 (LoadImage; pruned when unused)", {"file": ("image",)}),
    "mask": RoleSpec(
        "mask image (LoadImage of a grayscale PNG, white = change)", {"file": ("image",)}
    ),
    "scale": RoleSpec(
        "working resolution (ImageScaleToTotalPixels)", {"megapixels": ("megapixels",)}
    ),
    "region": RoleSpec("words naming the region (Florence2Run)", {"text": ("text_input",)}),
    "grounding_model": RoleSpec(
        "Florence-2 loader (DownloadAndLoadFlorence2Model)", {"name": ("model",)}
    ),
    "segment_model": RoleSpec("SAM 2 loader (DownloadAndLoadSAM2Model)", {"name": ("model",)}),
    "rmbg": RoleSpec(
        "background removal (BiRefNetRMBG)",
        {
            "model": ("model",),
            "sensitivity": ("sensitivity",),
            "mask_blur": ("mask_blur",),
            "mask_offset": ("mask_offset",),
        },
    ),
    "grow": RoleSpec("mask growth (GrowMask)", {"pixels": ("expand",)}),
    "feather": RoleSpec(
        "mask feathering (FeatherMask: one value on all four sides)",
        {"pixels": ("left", "top", "right", "bottom")},
    ),
    "pad": RoleSpec(
        "canvas extension (ImagePadForOutpaint)",
        {
            "left": ("left",),
            "top": ("top",),
            "right": ("right",),
            "bottom": ("bottom",),
            "feathering": ("feathering",),
        },
    ),
    "output": RoleSpec("the result (SaveImage)", {"prefix": ("filename_prefix",)}),
    "mask_output": RoleSpec(
        "the mask that was used (SaveImage of MaskToImage)", {"prefix": ("filename_prefix",)}
    ),
}

# Roles whose LoadImage node (and whatever only it feeds) is removed when no value is given.
IMAGE_SLOT_ROLES: frozenset[str] = frozenset({"image", "image1", "image2", "image3", "mask"})
# Roles whose SaveImage gets the per-submission nonce in its filename prefix.
OUTPUT_ROLES: frozenset[str] = frozenset({"output", "mask_output"})

def param_role(input_name: str) -> str:
    """The role that exposes one input by name: `param_role("denoise")` → "param:denoise"."""
    return PARAM_PREFIX + input_name


def role_spec(role: str) -> RoleSpec | None:
    """A role's fields: the fixed roles', or `param:<input>`'s one field "value" (that input)."""
    if role.startswith(PARAM_PREFIX):
        name = role.removeprefix(PARAM_PREFIX)
        return RoleSpec(f"'{name}'-taking", {"value": (name,)}) if name else None
    return ROLES.get(role)


def is_role(role: str) -> bool:
    return role_spec(role) is not None


def roles_in_title(title: str) -> list[str]:
    """`"Positive prompt #prompt"` → `["prompt"]`, `"Strength #param:denoise"` →
    `["param:denoise"]`; unknown words after # are ignored."""
    text = title or ""
    fixed = [r for r in ROLE_PATTERN.findall(text) if r in ROLES]
    return fixed + [param_role(name) for name in PARAM_PATTERN.findall(text)]

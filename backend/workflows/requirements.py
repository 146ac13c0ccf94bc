"""Preflight: which node classes and model files a template needs, against what a server has.

Model files are the loader inputs that name a file in a ComfyUI model folder. Models the
node packs download and manage themselves (Florence-2, SAM 2, BiRefNet) are not folder
files, so they are not checked here; their packs' node classes are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from backend.comfy.packs import pack_for
from backend.workflows.template import Template

# (class, input) → the model folder ComfyUI lists that input from.
MODEL_INPUTS: dict[tuple[str, str], str] = {
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("VAELoader", "vae_name"): "vae",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    # ComfyUI-GGUF: its `.gguf` files are listed only under these (../shared/comfy/gguf/).
    ("UnetLoaderGGUF", "unet_name"): "unet_gguf",
    ("UnetLoaderGGUFAdvanced", "unet_name"): "unet_gguf",
    ("CLIPLoaderGGUF", "clip_name"): "clip_gguf",
}
# Where people put the files of a listing that is not a folder on disk.
DISK_FOLDERS: dict[str, str] = {"unet_gguf": "diffusion_models", "clip_gguf": "text_encoders"}
# Loaders that take a `.gguf` or a core file: a core file is listed in this folder instead.
GGUF_OR_CORE: dict[str, str] = {"clip_gguf": "text_encoders"}


def model_folder(class_type: str, input_name: str, value: object) -> str | None:
    """The folder ComfyUI lists this loader input's file under (None: not a folder file).
    CLIPLoaderGGUF also loads a `.safetensors` encoder, listed with the core encoders."""
    folder = MODEL_INPUTS.get((class_type, input_name))
    if folder in GGUF_OR_CORE and isinstance(value, str) and not value.lower().endswith(".gguf"):
        return GGUF_OR_CORE[folder]
    return folder

# Custom-node packs by class, for messages that say what to install.
@dataclass(frozen=True)
class Requirements:
    classes: frozenset[str]
    models: dict[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Readiness:
    ready: bool
    missing_classes: tuple[str, ...] = ()
    # "folder/file name", e.g. "diffusion_models/qwen_image_edit_2511_fp8mixed.safetensors"
    missing_models: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        """One line for people; empty when ready."""
        parts = []
        if self.missing_classes:
            named = []
            for cls in self.missing_classes:
                pack = pack_for(cls)
                named.append(f"{cls} ({pack} pack)" if pack else cls)
            parts.append("missing node classes: " + ", ".join(named))
        if self.missing_models:
            parts.append("missing model files: " + ", ".join(self.missing_models))
        return "; ".join(parts)


def requirements(
    graph_or_template: Template | Mapping[str, Any],
    *,
    model_names: Mapping[str, str | None] | None = None,
) -> Requirements:
    """Node classes and folder model files a template (or a bound graph) needs.

    Template file names are only defaults; `model_names` (`{"unet": ..., "clip": ...,
    "vae": ...}`, by role) replaces them on that role's nodes, as binding would.
    """
    graph: Mapping[str, Any]
    if isinstance(graph_or_template, Template):
        graph = graph_or_template.graph
        overrides = {
            node_id: name
            for role, name in (model_names or {}).items()
            if name
            for node_id in graph_or_template.roles.get(role, ())
        }
    else:
        graph, overrides = graph_or_template, {}
    classes: set[str] = set()
    models: dict[str, set[str]] = {}
    for node_id, node in graph.items():
        if not isinstance(node, Mapping) or "class_type" not in node:
            continue
        class_type = node["class_type"]
        classes.add(class_type)
        for name, value in (node.get("inputs") or {}).items():
            if (class_type, name) not in MODEL_INPUTS:
                continue
            value = overrides.get(node_id, value)
            folder = model_folder(class_type, name, value)
            if folder and isinstance(value, str) and value:
                models.setdefault(folder, set()).add(value)
    return Requirements(
        classes=frozenset(classes), models={f: frozenset(n) for f, n in models.items()}
    )


def _folder_listing_from_schema(object_info: Mapping[str, Any], folder: str) -> set[str]:
    """A loader's combo in /object_info is the folder listing; used when no listing is given."""
    names: set[str] = set()
    for (class_type, input_name), f in MODEL_INPUTS.items():
        if f != folder:
            continue
        spec = object_info.get(class_type, {}).get("input", {}).get("required", {}).get(input_name)
        if spec and isinstance(spec[0], list):
            names.update(str(n) for n in spec[0])
    return names


def check_ready(
    reqs: Requirements,
    object_info: Mapping[str, Any],
    models_by_folder: Mapping[str, Iterable[str]] | None = None,
) -> Readiness:
    """Compare needs with the server: `object_info` from /object_info, listings from /models/<f>.

    A folder missing from `models_by_folder` (or all of them when it is None) is read from
    the loader combos in `object_info`, which ComfyUI fills from the same listing.
    """
    missing_classes = tuple(sorted(c for c in reqs.classes if c not in object_info))
    missing_models: list[str] = []
    for folder in sorted(reqs.models):
        if models_by_folder is not None and folder in models_by_folder:
            have = {_normalise(n) for n in models_by_folder[folder]}
        else:
            have = {_normalise(n) for n in _folder_listing_from_schema(object_info, folder)}
        for name in sorted(reqs.models[folder]):
            if _normalise(name) not in have:
                missing_models.append(f"{DISK_FOLDERS.get(folder, folder)}/{name}")
    return Readiness(
        ready=not missing_classes and not missing_models,
        missing_classes=missing_classes,
        missing_models=tuple(missing_models),
    )


def _normalise(name: str) -> str:
    # Windows servers list sub-folder files with backslashes.
    return name.replace("\\", "/")

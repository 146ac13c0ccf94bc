"""What the fake remembers: its settings (kept across restarts), counters, VRAM, history."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

GIB = 1024**3

# `/models` of the recorded server, in its order (pack folders last).
MODEL_FOLDER_KEYS: tuple[str, ...] = (
    "checkpoints", "configs", "loras", "vae", "text_encoders", "diffusion_models", "clip_vision",
    "style_models", "embeddings", "diffusers", "vae_approx", "controlnet", "gligen",
    "upscale_models", "custom_nodes", "hypernetworks", "photomaker", "classifiers",
    "model_patches", "audio_encoders", "rmbg", "ultralytics", "LLM",
)
# ComfyUI-GGUF's folders (fixtures/comfy/gguf/): on a real server these are the `.gguf` files of
# the diffusion-model and text-encoder folders, listed only here (`/models/unet_gguf`,
# `/models/clip_gguf`) and only while the pack is installed; they come after the other keys.
GGUF_FOLDERS: tuple[str, ...] = ("unet_gguf", "clip_gguf")
GGUF_BASE_FOLDERS: dict[str, str] = {"unet_gguf": "diffusion_models", "clip_gguf": "text_encoders"}
DEFAULT_MODELS: dict[str, list[str]] = {
    "diffusion_models": [
        "qwen_image_2512_fp8_e4m3fn.safetensors",
        "qwen_image_2512_fp8_e4m3fn_scaled_comfyui_4steps_v1.0.safetensors",
        "qwen_image_edit_2511_fp8mixed.safetensors",
    ],
    "text_encoders": ["qwen_2.5_vl_7b_fp8_scaled.safetensors"],
    "vae": ["qwen_image_vae.safetensors"],
    # The files the GGUF recording had (fixtures/comfy/gguf/models_endpoints.json).
    "unet_gguf": ["qwen-image-2512-Q4_K_M.gguf", "qwen-image-edit-2511-Q4_K_M.gguf"],
    "clip_gguf": ["Qwen2.5-VL-7B-Instruct-Q4_K_M.gguf"],
}
# Folders holding a diffusion model: only one of those fits next to the rest at a time.
DIFFUSION_FOLDERS = frozenset({"diffusion_models", "checkpoints", "unet", "unet_gguf"})

# `--preview-method` values the fake takes. ComfyUI 0.3.64 maps auto to latent2rgb (recorded:
# identical frames), so both send one JPEG per sampler step; none sends no sampler previews.
PREVIEW_METHODS: tuple[str, ...] = ("none", "auto", "latent2rgb")

DEFAULT_VRAM_GB = 48.0
# A `--cpu` server reports RAM as its device (fixtures/comfy/trace_misc.json, GET /system_stats):
# the recorded machine's total, and what was in use with nothing loaded (OS + ComfyUI itself).
CPU_RAM_TOTAL_BYTES = 25276502016
CPU_RAM_IDLE_USED_BYTES = 25276502016 - 23437783040


@dataclass
class Config:
    """Set by tests; survives `restart()` like files and flags survive a real restart."""

    root: Path
    host: str = "127.0.0.1"
    port: int = 0
    step_delay: float = 0.0
    load_delay: float = 0.0
    node_delay: float = 0.0          # extra seconds per executed node (slow prompts)
    vram_total_gb: float = DEFAULT_VRAM_GB   # the device's memory (RAM with `cpu`)
    other_tenant_gb: float = 0.0     # held on the device by another process (e.g. an LLM)
    cpu: bool = False                # `--cpu`: the device is the CPU and its memory is RAM
    preview_method: str = "auto"     # `--preview-method`, one of PREVIEW_METHODS
    gguf: bool = True                # the ComfyUI-GGUF pack is installed
    models: dict[str, list[str]] = field(default_factory=dict)
    hidden_classes: set[str] = field(default_factory=set)
    empty_files: set[str] = field(default_factory=set)   # listed model files of 0 bytes

    def __post_init__(self) -> None:
        if not self.models:
            self.models = {key: list(DEFAULT_MODELS.get(key, []))
                           for key in (*MODEL_FOLDER_KEYS, *GGUF_FOLDERS)}
        for sub in ("input", "output", "temp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def folder_keys(self) -> list[str]:
        """`GET /models`: the core and pack folders, plus the GGUF pack's when installed."""
        return [*MODEL_FOLDER_KEYS, *(GGUF_FOLDERS if self.gguf else ())]

    def lists_folder(self, folder: str) -> bool:
        """Whether `GET /models/{folder}` answers (else 404, empty body)."""
        if folder in GGUF_FOLDERS:
            return self.gguf
        return folder in self.models or folder in MODEL_FOLDER_KEYS

    @property
    def input_dir(self) -> Path:
        return self.root / "input"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def temp_dir(self) -> Path:
        return self.root / "temp"

    def dir_for_type(self, kind: str | None) -> Path | None:
        return {"input": self.input_dir, "output": self.output_dir, "temp": self.temp_dir}.get(
            kind or "")

    def input_files(self) -> set[str]:
        """Every file under input/ (relative, "/"-separated), plus "x [output]" / "x [temp]"."""
        found: set[str] = set()
        for kind, base in (("input", self.input_dir), ("output", self.output_dir),
                           ("temp", self.temp_dir)):
            for path in base.rglob("*"):
                if path.is_file():
                    rel = path.relative_to(base).as_posix()
                    found.add(rel if kind == "input" else f"{rel} [{kind}]")
        return found

    def input_images(self) -> list[str]:
        from .objectinfo import is_image_file

        return sorted(p.name for p in self.input_dir.iterdir()
                      if p.is_file() and is_image_file(p.name))


class Counters:
    """Thread-safe tallies tests read back (kept across restarts; reset explicitly)."""

    FIELDS = ("interrupts", "interrupts_applied", "prompts_posted", "prompts_rejected",
              "prompts_executed", "model_loads", "model_swaps", "model_unloads", "frees",
              "ws_connections", "ws_drops")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests: Counter[str] = Counter()
            self.values: Counter[str] = Counter({name: 0 for name in self.FIELDS})
            self.loads_by_model: Counter[str] = Counter()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.values[name] += n

    def request(self, route: str) -> None:
        with self._lock:
            self.requests[route] += 1

    def loaded(self, name: str) -> None:
        with self._lock:
            self.values["model_loads"] += 1
            self.loads_by_model[name] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {**self.values, "requests": dict(self.requests),
                    "loads_by_model": dict(self.loads_by_model)}


class Memory:
    """Simulated VRAM: a resident set of models; at most one diffusion model at a time.

    The device also holds ComfyUI's own baseline and whatever another tenant holds; models get
    the rest (`available_gb`). With `cpu` the device is the machine's RAM, as ComfyUI reports it.
    """

    BASELINE_GB = 0.6   # CUDA context and friends, never free
    CPU_BASELINE_GB = CPU_RAM_IDLE_USED_BYTES / GIB

    def __init__(self, config: Config, counters: Counters) -> None:
        self.config = config
        self.counters = counters
        self.resident: dict[tuple[str, str], float] = {}

    @property
    def baseline_gb(self) -> float:
        return self.CPU_BASELINE_GB if self.config.cpu else self.BASELINE_GB

    def available_gb(self) -> float:
        """What models may fill: the device minus the baseline and the other tenant."""
        return self.config.vram_total_gb - self.baseline_gb - self.config.other_tenant_gb

    def is_resident(self, folder: str, name: str) -> bool:
        return (folder, name) in self.resident

    def admit(self, folder: str, name: str, vram_gb: float) -> None:
        """Make room and account a model (the caller already waited the load delay)."""
        if folder in DIFFUSION_FOLDERS:
            others = [k for k in self.resident if k[0] in DIFFUSION_FOLDERS]
            for key in others:
                del self.resident[key]
            if others:
                self.counters.add("model_swaps")
                log.info("model swap: %s replaces %s", name, [k[1] for k in others])
        # Like ComfyUI, offload the least recently loaded models when the card is full.
        while self.resident and self.models_gb() + vram_gb > self.available_gb():
            oldest = next(iter(self.resident))
            del self.resident[oldest]
        self.resident[(folder, name)] = vram_gb
        self.counters.loaded(name)

    def touch(self, folder: str, name: str) -> None:
        key = (folder, name)
        self.resident[key] = self.resident.pop(key)

    def unload_all(self) -> None:
        if self.resident:
            self.counters.add("model_unloads")
        self.resident.clear()

    def models_gb(self) -> float:
        return sum(self.resident.values())

    def used_gb(self) -> float:
        return self.baseline_gb + self.config.other_tenant_gb + self.models_gb()

    def device(self) -> dict[str, Any]:
        """The `/system_stats` device entry, as ComfyUI's `get_free_memory` reports it."""
        total = int(self.config.vram_total_gb * GIB)
        free = max(0, total - int(self.used_gb() * GIB))
        if self.config.cpu:
            # torch's share is the whole RAM too (recorded: torch_* == vram_*).
            return {"name": "cpu", "type": "cpu", "index": None, "vram_total": total,
                    "vram_free": free, "torch_vram_total": total, "torch_vram_free": free}
        return {
            "name": "cuda:0 NVIDIA RTX 6000 Ada Generation : cudaMallocAsync",
            "type": "cuda",
            "index": 0,
            "vram_total": total,
            "vram_free": free,
            "torch_vram_total": int(self.models_gb() * GIB),
            "torch_vram_free": 0,
        }


class History:
    """`/history`: finished prompts in completion order (deleted pending ones never get here)."""

    MAXIMUM = 10000

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def add(self, prompt_id: str, entry: dict[str, Any]) -> None:
        if len(self.items) >= self.MAXIMUM:
            self.items.pop(next(iter(self.items)))
        self.items[prompt_id] = entry

    def get(self, max_items: int | None = None, offset: int = -1) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if offset < 0 and max_items is not None:
            offset = len(self.items) - max_items
        for i, (key, value) in enumerate(self.items.items()):
            if i >= offset:
                out[key] = value
                if max_items is not None and len(out) >= max_items:
                    break
        return out

    def one(self, prompt_id: str) -> dict[str, Any]:
        return {prompt_id: self.items[prompt_id]} if prompt_id in self.items else {}

    def delete(self, prompt_id: str) -> None:
        self.items.pop(prompt_id, None)

    def clear(self) -> None:
        self.items.clear()

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
DEFAULT_MODELS: dict[str, list[str]] = {
    "diffusion_models": [
        "qwen_image_2512_fp8_e4m3fn.safetensors",
        "qwen_image_2512_fp8_e4m3fn_scaled_comfyui_4steps_v1.0.safetensors",
        "qwen_image_edit_2511_fp8mixed.safetensors",
    ],
    "text_encoders": ["qwen_2.5_vl_7b_fp8_scaled.safetensors"],
    "vae": ["qwen_image_vae.safetensors"],
}
# Folders holding a diffusion model: only one of those fits next to the rest at a time.
DIFFUSION_FOLDERS = frozenset({"diffusion_models", "checkpoints", "unet"})


@dataclass
class Config:
    """Set by tests; survives `restart()` like files and flags survive a real restart."""

    root: Path
    host: str = "127.0.0.1"
    port: int = 0
    step_delay: float = 0.0
    load_delay: float = 0.0
    node_delay: float = 0.0          # extra seconds per executed node (slow prompts)
    vram_total_gb: float = 48.0
    models: dict[str, list[str]] = field(default_factory=dict)
    hidden_classes: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if not self.models:
            self.models = {key: list(DEFAULT_MODELS.get(key, [])) for key in MODEL_FOLDER_KEYS}
        for sub in ("input", "output", "temp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

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
    """Simulated VRAM: a resident set of models; at most one diffusion model at a time."""

    BASELINE_GB = 0.6   # CUDA context and friends, never free

    def __init__(self, config: Config, counters: Counters) -> None:
        self.config = config
        self.counters = counters
        self.resident: dict[tuple[str, str], float] = {}

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
        while self.resident and self.used_gb() + vram_gb > self.config.vram_total_gb:
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

    def used_gb(self) -> float:
        return self.BASELINE_GB + sum(self.resident.values())

    def device(self) -> dict[str, Any]:
        total = int(self.config.vram_total_gb * GIB)
        models = int(sum(self.resident.values()) * GIB)
        free = max(0, total - int(self.used_gb() * GIB))
        return {
            "name": "cuda:0 NVIDIA RTX 6000 Ada Generation : cudaMallocAsync",
            "type": "cuda",
            "index": 0,
            "vram_total": total,
            "vram_free": free,
            "torch_vram_total": models,
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

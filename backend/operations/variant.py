"""Which template variant a diffusion job runs: fp8 (the default templates) or GGUF Q4.

Pure functions of numbers: the mode's expected peak per variant (settings; the GGUF variant
≈ 10 GB less per UNet, the guide's figure) against what the device has free plus what
ComfyUI would free by unloading the models it holds. fp8 when both fit (better quality on
text-heavy prompts); the person's explicit choice always wins; when nothing fits the job
still goes (ComfyUI may offload) with a warning that names the remedies. The sidebar's
planning view and the out-of-memory message use the same figures and words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from backend.operations.families import GGUF
from backend.settings import Settings

GB = 1024**3
FP8 = "fp8"
LABELS = {FP8: "fp8", GGUF: "GGUF Q4"}
# The default template (fp8): None / "" when nobody chose, "default" when someone did.
NO_CHOICE = (None, "")
DEFAULT_NAMES = (*NO_CHOICE, "default")

FITS = "fits"
FITS_AFTER_UNLOADING = "fits after unloading"
WILL_NOT_FIT = "will not fit"


@dataclass(frozen=True)
class DeviceMemory:
    """One ComfyUI device, in GB: `held_gb` is what ComfyUI's torch holds (freed by unloading
    its models); `cpu` when the device is the machine's RAM."""

    total_gb: float | None
    free_gb: float
    held_gb: float = 0.0
    cpu: bool = False

    @classmethod
    def from_bytes(cls, total: int | None, free: int, held: int | None, cpu: bool = False
                   ) -> DeviceMemory:
        return cls(None if total is None else total / GB, free / GB, (held or 0) / GB, cpu)

    @property
    def available_gb(self) -> float:
        """What a job may use: free now plus what ComfyUI would free by unloading."""
        return self.free_gb + self.held_gb

    @property
    def others_gb(self) -> float | None:
        """Other tenants' share: total − free − ComfyUI's (None when the total is unknown)."""
        if self.total_gb is None:
            return None
        return max(0.0, self.total_gb - self.free_gb - self.held_gb)

    @property
    def memory(self) -> str:
        return "RAM" if self.cpu else "VRAM"


@dataclass(frozen=True)
class VariantChoice:
    """`variant`: the template variant to run (None: the default, fp8); `note`: why, for the
    result's notes (None: nothing worth saying); `fits`: False when nothing fits (a warning)."""

    variant: str | None
    note: str | None
    fits: bool = True


def expected_peaks(mode: str, fp8_peak_gb: float, settings: Settings, has_gguf: bool
                   ) -> dict[str, float]:
    """The mode's expected peak per variant it has: {"fp8": …, "gguf": …}. The GGUF peak is
    STUDIO_PEAK_VRAM_<MODE>_GGUF, else the fp8 peak minus the Q4 UNet's saving (and the Q4
    text encoder's, when one is configured)."""
    peaks = {FP8: fp8_peak_gb}
    if has_gguf:
        saving = settings.gguf_unet_saving_gb
        if settings.models.text_encoder_gguf:
            saving += settings.gguf_text_encoder_saving_gb
        peaks[GGUF] = settings.peak_vram_overrides.get(
            f"{mode}_{GGUF}", max(1.0, fp8_peak_gb - saving))
    return peaks


def verdict(peak_gb: float, memory: DeviceMemory) -> str:
    """fits (free now) / fits after unloading (ComfyUI's cached models) / will not fit."""
    if memory.free_gb >= peak_gb:
        return FITS
    if memory.available_gb >= peak_gb:
        return FITS_AFTER_UNLOADING
    return WILL_NOT_FIT


def choose_variant(
    *,
    setting: str,
    explicit: str | None,
    peaks: Mapping[str, float],
    memory: DeviceMemory | None,
    gguf_installed: bool,
) -> VariantChoice:
    """The variant a job runs. `setting` is STUDIO_VARIANT (auto | fp8 | gguf); `explicit`
    the person's pick (the API's model id, a caller's "default"; None: none — the UI's
    Advanced "default" is no pick); `peaks` from
    expected_peaks (no "gguf" key: the mode has no GGUF variant); `memory` None when unknown;
    `gguf_installed` when the server has the pack and the files."""
    if explicit not in NO_CHOICE:
        return VariantChoice(explicit, None)
    can_gguf = GGUF in peaks and gguf_installed
    fp8_peak = peaks[FP8]
    if setting == GGUF and can_gguf:
        return VariantChoice(GGUF, f"{LABELS[GGUF]} (STUDIO_VARIANT=gguf).")
    if memory is None:
        return VariantChoice(None, None)
    have = _have(memory)
    fp8_fits = memory.available_gb >= fp8_peak
    if setting == FP8 or not can_gguf or fp8_fits:
        if fp8_fits:
            return VariantChoice(None, f"fp8: {have}, needs ~{fp8_peak:.0f} GB."
                                 if setting == "auto" and can_gguf else None)
        return VariantChoice(None, _warning(FP8, fp8_peak, memory, peaks, can_gguf), False)
    gguf_peak = peaks[GGUF]
    if memory.available_gb >= gguf_peak:
        return VariantChoice(
            GGUF, f"{LABELS[GGUF]}: {have}, fp8 needs ~{fp8_peak:.0f} GB "
                  f"(GGUF ~{gguf_peak:.0f} GB).")
    return VariantChoice(GGUF, _warning(GGUF, gguf_peak, memory, peaks, can_gguf), False)


def _have(memory: DeviceMemory) -> str:
    """"19 GB free" or "12 GB free + 8 GB ComfyUI frees by unloading"."""
    text = f"{memory.free_gb:.0f} GB {memory.memory} free"
    if memory.held_gb >= 0.5:
        text += f" + {memory.held_gb:.0f} GB ComfyUI frees by unloading"
    return text


def _warning(variant: str, peak_gb: float, memory: DeviceMemory, peaks: Mapping[str, float],
             can_gguf: bool) -> str:
    short = peak_gb - memory.available_gb
    return (f"{LABELS[variant]} needs ~{peak_gb:.0f} GB but {_have(memory)}: running anyway "
            f"(ComfyUI may offload, slower, or run out of memory). "
            f"{remedies(memory, peaks, short, gguf_used=variant == GGUF, can_gguf=can_gguf)}")


def remedies(memory: DeviceMemory, peaks: Mapping[str, float], short_gb: float, *,
             gguf_used: bool, can_gguf: bool) -> str:
    """The guide's out-of-memory remedies in its order, with what each saves on this device
    (`short_gb`: how much is missing; ≤ 0 when the peak fits on paper)."""
    peak = peaks[GGUF] if gguf_used and GGUF in peaks else peaks[FP8]
    steps = [f"lower the resolution (1024² → 768² saves ~30%, ~{peak * 0.3:.0f} GB here)",
             "run one job at a time (batch size 1)"]
    others = memory.others_gb
    if memory.cpu:
        steps.append("give ComfyUI a GPU (it runs on the CPU: this is RAM)")
    elif others is not None and others >= 0.5:
        steps.append(f"shrink the other services on this GPU (they hold ~{others:.0f} GB; "
                     "e.g. vLLM's --gpu-memory-utilization)")
    if not memory.cpu:
        steps.append("pin ComfyUI to another GPU (CUDA_VISIBLE_DEVICES)")
    if not gguf_used and GGUF in peaks:
        saves = peaks[FP8] - peaks[GGUF]
        steps.append(f"use the GGUF Q4 variant (~{saves:.0f} GB less"
                     + ("" if can_gguf else "; install ComfyUI-GGUF and its .gguf files") + ")")
    numbered = "; ".join(f"{i}) {s}" for i, s in enumerate(steps, start=1))
    need = f" (~{short_gb:.0f} GB short)" if short_gb >= 0.5 else ""
    return f"Free {memory.memory} now: {memory.free_gb:.1f} GB{need}. Try: {numbered}."

"""The variant choice (backend/operations/variant.py): pure numbers in, a variant and a note out."""

from __future__ import annotations

import pytest

from backend.operations.variant import (
    FITS,
    FITS_AFTER_UNLOADING,
    WILL_NOT_FIT,
    DeviceMemory,
    VariantChoice,
    choose_variant,
    expected_peaks,
    remedies,
    verdict,
)
from backend.settings import ModelFiles, Settings

SETTINGS = Settings()
PEAKS = expected_peaks("generate", 30.0, SETTINGS, has_gguf=True)
SHARED_24 = DeviceMemory(total_gb=24, free_gb=17.4, held_gb=0.0)     # 6 GB tenant + baseline
CARD_80 = DeviceMemory(total_gb=80, free_gb=79.4)


def choose(memory: DeviceMemory | None, *, setting: str = "auto", explicit: str | None = None,
           installed: bool = True, peaks: dict[str, float] = PEAKS) -> VariantChoice:
    return choose_variant(setting=setting, explicit=explicit, peaks=peaks, memory=memory,
                          gguf_installed=installed)


def test_expected_peaks_follow_the_guide_and_the_settings() -> None:
    assert PEAKS == {"fp8": 30.0, "gguf": 16.0}        # −10 UNet, −4 Q4 text encoder
    fp8_encoder = Settings(models=ModelFiles(text_encoder_gguf=""))
    assert expected_peaks("edit", 30.0, fp8_encoder, True) == {"fp8": 30.0, "gguf": 20.0}
    override = Settings(peak_vram_overrides={"edit_gguf": 18.5})
    assert expected_peaks("edit", 30.0, override, True)["gguf"] == 18.5
    assert expected_peaks("remove_background", 3.0, SETTINGS, False) == {"fp8": 3.0}


def test_auto_picks_gguf_on_a_shared_24_gb_card_and_says_why() -> None:
    choice = choose(SHARED_24)
    assert choice.variant == "gguf" and choice.fits
    assert choice.note == "GGUF Q4: 17 GB VRAM free, fp8 needs ~30 GB (GGUF ~16 GB)."


def test_fp8_when_both_fit_counting_what_comfyui_would_unload() -> None:
    assert choose(CARD_80).variant is None
    assert choose(CARD_80).note == "fp8: 79 GB VRAM free, needs ~30 GB."
    warm = DeviceMemory(total_gb=48, free_gb=17.0, held_gb=30.4)     # the other model loaded
    assert choose(warm).variant is None and choose(warm).fits


def test_the_persons_choice_and_the_setting_win() -> None:
    assert choose(SHARED_24, explicit="turbo") == VariantChoice("turbo", None)
    assert choose(CARD_80, explicit="gguf").variant == "gguf"
    assert choose(SHARED_24, explicit="default").variant == "default"   # fp8, chosen
    assert choose(SHARED_24, explicit="").variant == "gguf"             # no choice
    forced = choose(SHARED_24, setting="fp8")
    assert forced.variant is None and not forced.fits and "GGUF Q4 variant" in (forced.note or "")
    assert choose(CARD_80, setting="gguf").variant == "gguf"


def test_unknown_memory_or_no_gguf_keeps_fp8() -> None:
    assert choose(None) == VariantChoice(None, None)
    missing = choose(SHARED_24, installed=False)
    assert missing.variant is None and not missing.fits
    assert "install ComfyUI-GGUF" in (missing.note or "")
    no_variant = choose(SHARED_24, peaks={"fp8": 30.0})
    assert no_variant.variant is None and "GGUF" not in (no_variant.note or "")


def test_nothing_fits_runs_the_smaller_one_with_remedies() -> None:
    tiny = DeviceMemory(total_gb=16, free_gb=9.0, held_gb=0.0)
    choice = choose(tiny)
    assert choice.variant == "gguf" and not choice.fits
    note = choice.note or ""
    assert note.startswith("GGUF Q4 needs ~16 GB but 9 GB VRAM free: running anyway")
    assert "lower the resolution" in note and "shrink the other services" in note
    assert "use the GGUF" not in note           # already on GGUF


@pytest.mark.parametrize(("memory", "expected"), [
    (DeviceMemory(48, 40.0), FITS),
    (DeviceMemory(48, 17.0, 30.0), FITS_AFTER_UNLOADING),
    (DeviceMemory(24, 17.4), WILL_NOT_FIT),
])
def test_verdict(memory: DeviceMemory, expected: str) -> None:
    assert verdict(30.0, memory) == expected


def test_remedies_say_ram_on_a_cpu_device_and_what_each_saves() -> None:
    gpu = remedies(SHARED_24, PEAKS, 12.6, gguf_used=False, can_gguf=True)
    assert gpu.startswith("Free VRAM now: 17.4 GB (~13 GB short). Try: 1) lower the resolution")
    assert "~9 GB here" in gpu and "hold ~7 GB" in gpu and "~14 GB less" in gpu
    cpu = remedies(DeviceMemory(64, 20.0, cpu=True), PEAKS, 10, gguf_used=False, can_gguf=True)
    assert cpu.startswith("Free RAM now") and "CUDA_VISIBLE_DEVICES" not in cpu
    assert "others" not in cpu


def test_other_tenants_share() -> None:
    assert SHARED_24.others_gb == pytest.approx(6.6)
    assert DeviceMemory(None, 3.0).others_gb is None

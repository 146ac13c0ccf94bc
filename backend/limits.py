"""Every knob's limits, written once: the UI's sliders, the API's checks and the operations'
validation all read them here.

Chosen values (docs/architecture.md): steps 1–100 and CFG 0–20 (the UI used to stop at 80 and
10 while the backend took 150 and 30; 100 steps is already far past any quality gain, and CFG
above 20 only burns the picture), grow and feather 0–256 px (the backend's range; the UI
stopped at 128), seed 0 to 2^53 − 1 (JavaScript's largest safe integer: the browser and JSON
clients round-trip it exactly).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from backend.requests import InvalidRequest


@dataclass(frozen=True)
class IntKnob:
    """A whole-number knob: its range, its slider step, and the word its messages use."""

    label: str
    low: int
    high: int
    step: int = 1

    def check(self, value: object, field: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidRequest(f"{self.label} must be a whole number.", field)
        if not self.low <= value <= self.high:
            raise InvalidRequest(
                f"{self.label} must be between {self.low} and {self.high} (got {value}).", field
            )
        return value

    def up_to(self, high: int) -> IntKnob:
        """The same knob with another upper bound (a setting that moves it)."""
        return replace(self, high=high)


@dataclass(frozen=True)
class FloatKnob:
    label: str
    low: float
    high: float
    step: float

    def check(self, value: object, field: str) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise InvalidRequest(f"{self.label} must be a number.", field)
        if not self.low <= value <= self.high:
            raise InvalidRequest(
                f"{self.label} must be between {self.low:g} and {self.high:g} (got {value:g}).",
                field,
            )
        return float(value)


Knob = IntKnob | FloatKnob

MAX_SEED = 2**53 - 1
GRID = 16  # the latent grid plus the patchify step: every sampled side is a multiple of it

SEED = IntKnob("Seed", 0, MAX_SEED)
STEPS = IntKnob("Steps", 1, 100)
CFG = FloatKnob("CFG", 0.0, 20.0, 0.1)
GROW = IntKnob("Grow", 0, 256)
FEATHER = IntKnob("Feather", 0, 256)
# Per side; STUDIO_MAX_OUTPAINT_PAD moves the top (Settings.max_outpaint_pad, see pad_knob).
PAD = IntKnob("Pad", 0, 1024, GRID)
FEATHERING = IntKnob("Feathering", 0, 256, 4)
WIDTH = IntKnob("Width", 256, 2048, GRID)
HEIGHT = IntKnob("Height", 256, 2048, GRID)
BATCH = IntKnob("n", 1, 4)               # images per API call
REFERENCES = IntKnob("References", 1, 3)  # images a multi-reference edit takes
REGION_CHARS = 300                        # words naming a region, at most

# Pictures: what an upload may be (a decompression bomb is over it) and how large a
# full-resolution result gets (inpaint, outpaint, region edit, background removal keep the
# input's size up to this; a larger input is scaled down on load, and the job says so).
# Settings carry them (STUDIO_MAX_INPUT_PIXELS, STUDIO_MAX_RESULT_PIXELS).
MAX_INPUT_PIXELS = 200_000_000
MAX_RESULT_PIXELS = 40_000_000

KIB, MIB = 1024, 1024 * 1024


def describe_bytes(size: int) -> str:
    """Bytes as README writes them: "25 MB" for 25 × 1024², "1.5 MB", "64 KB"."""
    if size >= MIB:
        value, unit = size / MIB, "MB"
    elif size >= KIB:
        value, unit = size / KIB, "KB"
    else:
        return f"{size} bytes"
    shown = f"{value:.0f}" if value == int(value) or value >= 100 else f"{value:.1f}"
    return f"{shown} {unit}"

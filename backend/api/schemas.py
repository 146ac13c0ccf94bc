"""What the OpenAI-style routes accept: model names, sizes, and the plain fields of both routes.

Parsing is by hand (not pydantic models) so every problem becomes an OpenAI-shaped 400 naming
the parameter, instead of FastAPI's 422 list.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from backend.api.errors import ApiError
from backend.operations.base import MAX_SEED

GRID = 16
DEFAULT_SIZE = (1024, 1024)
MAX_N = 4
OWNER = "banana-studio"

# Model id → mode. "qwen-image-edit" picks edit / multiref / inpaint from what was sent.
GENERATE_MODELS: dict[str, str] = {"qwen-image": "generate"}
EDIT_MODELS: dict[str, str] = {
    "qwen-image-edit": "edit",
    "qwen-image-multiref": "multiref",
    "qwen-image-inpaint": "inpaint",
    "qwen-image-outpaint": "outpaint",
    "qwen-image-region-edit": "region_edit",
    "qwen-image-remove-background": "remove_background",
}
DEFAULT_GENERATE_MODEL = "qwen-image"
DEFAULT_EDIT_MODEL = "qwen-image-edit"
DEFAULT_VARIANT = "default"


@dataclass(frozen=True)
class ModelChoice:
    model: str            # the canonical id, echoed back
    mode: str
    variant: str | None   # None = the mode's default template


def model_ids(bases: Mapping[str, str], variants: Callable[[str], list[str]]) -> list[str]:
    """Every id a route accepts: each base, plus base-<variant> for each non-default template."""
    ids = []
    for base, mode in bases.items():
        ids.append(base)
        ids.extend(f"{base}-{v}" for v in variants(mode) if v != DEFAULT_VARIANT)
    return ids


def pick_model(
    raw: Any, bases: Mapping[str, str], default: str, variants: Callable[[str], list[str]]
) -> ModelChoice:
    """`qwen-image`, `qwen-image-turbo`, `vendor/qwen-image` … → mode and template variant."""
    if raw is None or raw == "":
        raw = default
    if not isinstance(raw, str):
        raise ApiError(400, "'model' must be a string.", param="model", code="invalid_model")
    name = raw.strip().rsplit("/", 1)[-1].lower()   # gateways prefix a vendor: "org/qwen-image"
    if name in bases:
        return ModelChoice(name, bases[name], None)
    # Longest base first so "qwen-image-edit-x" is not read as generate variant "edit-x".
    for base in sorted(bases, key=len, reverse=True):
        if name.startswith(base + "-"):
            variant = name[len(base) + 1 :]
            if variant in variants(bases[base]):
                return ModelChoice(name, bases[base], variant)
    known = ", ".join(model_ids(bases, variants))
    raise ApiError(
        400,
        f"The model '{raw}' does not exist here. Use one of: {known}.",
        param="model",
        code="model_not_found",
    )


def parse_size(raw: Any, max_pixels: int, *, param: str = "size") -> tuple[int, int]:
    """"WxH" (or "auto" / missing → 1024x1024); sides multiples of 16, area within budget."""
    if raw is None or raw == "" or raw == "auto":
        return DEFAULT_SIZE
    text = str(raw).strip().lower().replace("×", "x")
    w_text, sep, h_text = text.partition("x")
    if not sep or not w_text.isdigit() or not h_text.isdigit():
        raise ApiError(
            400, f"Size '{raw}' is not WIDTHxHEIGHT, e.g. 1024x1024.", param=param,
            code="invalid_size",
        )
    width, height = int(w_text), int(h_text)
    for label, value in (("Width", width), ("Height", height)):
        if value < GRID or value % GRID:
            low = max(GRID, value // GRID * GRID)
            raise ApiError(
                400,
                f"{label} {value} is not a multiple of {GRID}; try {low} or {low + GRID}.",
                param=param,
                code="invalid_size",
            )
    if width * height > max_pixels:
        scale = math.sqrt(max_pixels / (width * height))
        w = max(GRID, int(width * scale) // GRID * GRID)
        h = max(GRID, int(height * scale) // GRID * GRID)
        raise ApiError(
            400,
            f"{width}x{height} is over the pixel budget of {max_pixels} pixels; try {w}x{h}.",
            param=param,
            code="invalid_size",
        )
    return width, height


def parse_n(raw: Any) -> int:
    if raw is None or raw == "":
        return 1
    try:
        n = int(raw)
        if isinstance(raw, bool) or (isinstance(raw, float) and n != raw):
            raise ValueError
    except (TypeError, ValueError):
        raise ApiError(400, "'n' must be a whole number.", param="n") from None
    if not 1 <= n <= MAX_N:
        raise ApiError(400, f"'n' must be between 1 and {MAX_N} (got {n}).", param="n")
    return n


def check_response_format(raw: Any) -> None:
    if raw in (None, "", "b64_json"):
        return
    if raw == "url":
        raise ApiError(
            400,
            "Only b64_json is supported: this studio does not host result files.",
            param="response_format",
            code="unsupported_response_format",
        )
    raise ApiError(400, f"Unknown response_format '{raw}'.", param="response_format")


def optional_int(raw: Any, param: str) -> int | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise ApiError(400, f"'{param}' must be a whole number.", param=param)
    try:
        value = int(raw) if not isinstance(raw, float) else raw
    except (TypeError, ValueError):
        raise ApiError(400, f"'{param}' must be a whole number.", param=param) from None
    if isinstance(value, float):
        if not value.is_integer():
            raise ApiError(400, f"'{param}' must be a whole number.", param=param)
        value = int(value)
    return value


def optional_float(raw: Any, param: str) -> float | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise ApiError(400, f"'{param}' must be a number.", param=param)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ApiError(400, f"'{param}' must be a number.", param=param) from None
    if not math.isfinite(value):
        raise ApiError(400, f"'{param}' must be a finite number.", param=param)
    return value


def text(raw: Any, param: str, *, required: bool = False) -> str:
    if raw is None:
        raw = ""
    if not isinstance(raw, str):
        raise ApiError(400, f"'{param}' must be a string.", param=param)
    if required and not raw.strip():
        raise ApiError(400, f"'{param}' is required.", param=param, code="missing_" + param)
    return raw


@dataclass(frozen=True)
class Common:
    """Fields both routes share (the OpenAI ones plus the studio's extras)."""

    n: int
    seed: int | None
    negative_prompt: str
    steps: int | None
    cfg: float | None


def parse_common(body: Mapping[str, Any]) -> Common:
    check_response_format(body.get("response_format"))
    return Common(
        n=parse_n(body.get("n")),
        seed=optional_int(body.get("seed"), "seed"),
        negative_prompt=text(body.get("negative_prompt"), "negative_prompt"),
        steps=optional_int(body.get("steps"), "steps"),
        cfg=optional_float(body.get("cfg"), "cfg"),
    )


def seed_for(common: Common, index: int) -> int | None:
    """n images from one seed must differ: seed, seed+1, … (random when no seed was given),
    wrapping past the largest seed rather than failing on a seed the caller never sent."""
    return None if common.seed is None else (common.seed + index) % (MAX_SEED + 1)

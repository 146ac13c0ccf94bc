"""What the OpenAI-style routes accept: model names, sizes, and the plain fields of both routes.

Parsing is by hand (not pydantic models) so every problem becomes an OpenAI-shaped 400 naming
the parameter, instead of FastAPI's 422 list.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backend import limits
from backend.api.errors import ApiError

DEFAULT_SIZE = (1024, 1024)
OWNER = "banana-studio"
DEFAULT_VARIANT = "default"
Variants = Callable[[str], list[str]]


@dataclass(frozen=True)
class ApiModel:
    """One model id a route accepts and the mode behind it (from the mode registry)."""

    id: str
    mode: str


@dataclass(frozen=True)
class ModelChoice:
    model: str            # the canonical id, echoed back
    mode: str
    variant: str | None   # None = the mode's default template


def model_ids(models: Sequence[ApiModel], variants: Variants) -> list[str]:
    """Every id a route accepts: each base, plus base-<variant> for each non-default template."""
    ids = []
    for model in models:
        ids.append(model.id)
        ids.extend(f"{model.id}-{v}" for v in variants(model.mode) if v != DEFAULT_VARIANT)
    return ids


def pick_model(raw: Any, models: Sequence[ApiModel], variants: Variants) -> ModelChoice:
    """`qwen-image`, `qwen-image-turbo`, `vendor/qwen-image` … → mode and template variant.
    No model (or "") is the route's default: its first."""
    bases = {m.id: m.mode for m in models}
    if raw is None or raw == "":
        raw = models[0].id
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
    known = ", ".join(model_ids(models, variants))
    raise ApiError(
        400,
        f"The model '{raw}' does not exist here. Use one of: {known}.",
        param="model",
        code="model_not_found",
    )


_SIZE = re.compile(r"(\d{1,6})x(\d{1,6})", re.ASCII)
MAX_ECHO_CHARS = 40   # of a bad value quoted back in a message


def shown(raw: object) -> str:
    """A value as a message quotes it: short, and safe to encode (no lone surrogates)."""
    text = str(raw)
    if len(text) > MAX_ECHO_CHARS:
        text = text[: MAX_ECHO_CHARS - 1] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def parse_size(raw: Any, max_pixels: int, *, param: str = "size") -> tuple[int, int]:
    """"WxH" (or "auto" / missing → 1024x1024); sides multiples of 16, area within budget.
    ASCII digits only, at most 6 per side: "²x²" or a 5,000-digit side is a 400, not a crash."""
    if raw is None or raw == "" or raw == "auto":
        return DEFAULT_SIZE
    text = str(raw).strip().lower().replace("×", "x") if isinstance(raw, str) else ""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ApiError(
            400, f"Size '{shown(raw)}' is not WIDTHxHEIGHT, e.g. 1024x1024.", param=param,
            code="invalid_size",
        )
    width, height = int(match.group(1)), int(match.group(2))
    grid = limits.GRID
    for label, value in (("Width", width), ("Height", height)):
        if value < grid or value % grid:
            low = max(grid, value // grid * grid)
            raise ApiError(
                400,
                f"{label} {value} is not a multiple of {grid}; try {low} or {low + grid}.",
                param=param,
                code="invalid_size",
            )
    if width * height > max_pixels:
        scale = math.sqrt(max_pixels / (width * height))
        w = max(grid, int(width * scale) // grid * grid)
        h = max(grid, int(height * scale) // grid * grid)
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
    n = optional_int(raw, "n")
    assert n is not None
    if not limits.BATCH.low <= n <= limits.BATCH.high:
        raise ApiError(
            400, f"'n' must be between {limits.BATCH.low} and {limits.BATCH.high} (got {n}).",
            param="n",
        )
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
    """A whole number from JSON (int, or a float like 2.0) or form text ("2"); anything else
    — 2.5, 1e400 (infinity), "²", a 5,000-digit string, true — is a 400 naming `param`."""
    if raw is None or raw == "":
        return None
    whole = ApiError(400, f"'{param}' must be a whole number.", param=param)
    if isinstance(raw, bool):
        raise whole
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        if not raw.is_integer():     # also inf and nan
            raise whole
        return int(raw)
    if isinstance(raw, str) and _WHOLE.fullmatch(raw.strip()):
        return int(raw.strip())
    raise whole


_WHOLE = re.compile(r"[+-]?\d{1,30}", re.ASCII)


def optional_float(raw: Any, param: str) -> float | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise ApiError(400, f"'{param}' must be a number.", param=param)
    try:
        value = float(raw)
    except (TypeError, ValueError, OverflowError):
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
    # Broken characters (a lone UTF-16 half, control characters) are refused by the request's
    # own checks (backend/operations/base.py check_text), with one sentence for UI and API.
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
    wrapping past the largest seed rather than failing on a seed the caller never sent. A seed
    out of range is passed on as it is, so the mode refuses it with the UI's sentence (one
    rule everywhere: 0 to 2^53 − 1, or no seed for a random one; -1 is refused too)."""
    if common.seed is None:
        return None
    if not limits.SEED.low <= common.seed <= limits.SEED.high:
        return common.seed
    return (common.seed + index) % (limits.MAX_SEED + 1)

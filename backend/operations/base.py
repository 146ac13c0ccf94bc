"""What every mode shares: the request base, InvalidRequest, Prepared, the checks of the
common fields, and the model/sampler bindings of the two model families.

An operation is a small object with four steps the job runner calls in order:
`validate(request, settings)` (cheap, no decoding), `prepare(request, settings) -> Prepared`
(decode, scale, build uploads and role values; CPU work, run off the event loop),
then after ComfyUI ran: `finish(prepared, outputs) -> (images, extras)`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any, ClassVar, Protocol

from PIL import Image

from backend.settings import Settings

MAX_SEED = 2**53 - 1  # JavaScript's Number.MAX_SAFE_INTEGER: the UI and API round-trip it
MAX_STEPS = 150
MAX_CFG = 30.0

ImageInput = Image.Image | bytes
RoleValues = dict[str, dict[str, Any]]


class InvalidRequest(ValueError):
    """A request the studio will not send; `message` says what to change, `field` where."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class RequestBase:
    """Common fields, keyword-only so each mode keeps its own positional fields first."""

    mode: ClassVar[str] = ""
    _: KW_ONLY
    seed: int | None = None
    steps: int | None = None
    cfg: float | None = None
    variant: str | None = None
    negative_prompt: str = ""


@dataclass(frozen=True)
class Prepared:
    """Everything a submission needs, computed before touching ComfyUI.

    `values` are role bindings except file names (the runner adds those after uploading
    `uploads`); `optional_roles` are bound only when the template has them; `state` is what
    `finish` needs (the full-resolution input, masks, geometry); `notes` go to the user.
    """

    mode: str
    seed: int
    uploads: Mapping[str, bytes]
    values: Mapping[str, Mapping[str, Any]]
    optional_roles: frozenset[str] = frozenset()
    diffusion_model: str | None = None
    work_size: tuple[int, int] | None = None
    state: Any = None
    notes: tuple[str, ...] = ()


Outputs = Mapping[str, list[Image.Image]]
Finished = tuple[list[Image.Image], dict[str, Image.Image]]


def model_output(outputs: Outputs) -> Finished:
    """`finish` of the modes whose result is the model's output as it is."""
    return list(outputs.get("output", [])), {}


class Operation(Protocol):
    mode: str

    def validate(self, request: Any, settings: Settings) -> None: ...

    def prepare(self, request: Any, settings: Settings) -> Prepared: ...

    def finish(self, prepared: Prepared, outputs: Outputs) -> Finished: ...


@dataclass(frozen=True)
class Sampling:
    """The resolved sampler values of one request (defaults filled from settings)."""

    seed: int
    steps: int
    cfg: float
    unet: str
    shift: float


# --- checks of the common fields --------------------------------------------------------


def check_common(request: RequestBase) -> None:
    if request.seed is not None:
        if isinstance(request.seed, bool) or not isinstance(request.seed, int):
            raise InvalidRequest("Seed must be a whole number.", "seed")
        if not 0 <= request.seed <= MAX_SEED:
            raise InvalidRequest(
                f"Seed {request.seed} is out of range; use 0 to {MAX_SEED} "
                "(or leave it empty for a random seed).",
                "seed",
            )
    if request.steps is not None:
        if isinstance(request.steps, bool) or not isinstance(request.steps, int):
            raise InvalidRequest("Steps must be a whole number.", "steps")
        if not 1 <= request.steps <= MAX_STEPS:
            raise InvalidRequest(
                f"Steps must be between 1 and {MAX_STEPS} (got {request.steps}).", "steps"
            )
    if request.cfg is not None:
        if not isinstance(request.cfg, int | float) or not math.isfinite(request.cfg):
            raise InvalidRequest("CFG must be a number.", "cfg")
        if not 0 <= request.cfg <= MAX_CFG:
            raise InvalidRequest(
                f"CFG must be between 0 and {MAX_CFG:g} (got {request.cfg:g}).", "cfg"
            )
    if request.variant is not None and not _is_name(request.variant):
        raise InvalidRequest(
            f"Variant {request.variant!r} is not a template variant name "
            "(letters, digits, '-' and '_').",
            "variant",
        )


def _is_name(text: str) -> bool:
    return bool(text) and all(c.isalnum() or c in "-_" for c in text)


def check_prompt(prompt: str, *, required: bool = True, field: str = "prompt") -> None:
    if not isinstance(prompt, str):
        raise InvalidRequest("The prompt must be text.", field)
    if required and not prompt.strip():
        raise InvalidRequest("Write a prompt: describe what you want to see.", field)


def check_image_present(image: object, field: str = "image") -> None:
    if image is None or (isinstance(image, bytes | bytearray) and not image):
        raise InvalidRequest("Add an image first.", field)
    if not isinstance(image, Image.Image | bytes | bytearray):
        raise InvalidRequest("The image must be a picture file or an image.", field)


def check_int(value: object, field: str, label: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{label} must be a whole number.", field)
    if not low <= value <= high:
        raise InvalidRequest(f"{label} must be between {low} and {high} (got {value}).", field)
    return value


MAX_GROW = 256  # pixels a mask may grow or feather by (inpaint, region edit)


def check_grow_feather(request: Any) -> None:
    """The masked modes' grow and feather knobs, in input pixels."""
    check_int(request.grow, "grow", "Grow", 0, MAX_GROW)
    check_int(request.feather, "feather", "Feather", 0, MAX_GROW)


def resolve_seed(seed: int | None) -> int:
    return random.randint(0, MAX_SEED) if seed is None else seed


# --- model families ---------------------------------------------------------------------


def generate_sampling(request: RequestBase, settings: Settings) -> Sampling:
    s, m = settings.sampling, settings.models
    if request.variant == "turbo":  # the 4-step distilled UNet has its own defaults
        unet, steps, cfg = m.generate_turbo_unet, s.turbo_steps, s.turbo_cfg
    else:
        unet, steps, cfg = m.generate_unet, s.generate_steps, s.generate_cfg
    return Sampling(
        seed=resolve_seed(request.seed),
        steps=request.steps if request.steps is not None else steps,
        cfg=float(request.cfg if request.cfg is not None else cfg),
        unet=unet,
        shift=s.generate_shift,
    )


def edit_sampling(request: RequestBase, settings: Settings) -> Sampling:
    s = settings.sampling
    return Sampling(
        seed=resolve_seed(request.seed),
        steps=request.steps if request.steps is not None else s.edit_steps,
        cfg=float(request.cfg if request.cfg is not None else s.edit_cfg),
        unet=settings.models.edit_unet,
        shift=s.edit_shift,
    )


def diffusion_values(
    sampling: Sampling, settings: Settings, prompt: str, negative: str
) -> RoleValues:
    """Bindings of the loaders, the texts and the sampler, shared by every diffusion mode."""
    return {
        "unet": {"name": sampling.unet},
        "clip": {"name": settings.models.text_encoder},
        "vae": {"name": settings.models.vae},
        "shift": {"shift": sampling.shift},
        "prompt": {"text": prompt},
        "negative": {"text": negative},
        "sampler": {
            "seed": sampling.seed,
            "steps": sampling.steps,
            "cfg": sampling.cfg,
            "sampler_name": settings.sampling.sampler,
            "scheduler": settings.sampling.scheduler,
        },
    }


# Roles a diffusion template may lack without being wrong (bound only when present).
DIFFUSION_OPTIONAL = frozenset({"shift"})

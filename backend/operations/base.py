"""What every operation shares: the Operation steps, what `prepare` hands the job runner
(`Prepared`), what `assemble` gives back (`Assembled`), and the checks of the common fields.

An operation is a small object the job runner (backend/jobs.py) calls in this order:
1. `validate(request, settings)`: cheap checks, no decoding (InvalidRequest says what to fix);
2. `prepare(request, settings) -> Prepared`: decode, scale, build the uploads and the role
   values (CPU work: the runner calls it off the event loop);
3. for a mode with `precheck_role` (region edit), ComfyUI first runs only that output's branch
   and `check_precheck(prepared, images)` may refuse to go on;
4. after ComfyUI ran the bound template: `assemble(prepared, outputs) -> Assembled` (the
   full-resolution composite, or the model's output as it is).
Memory: `prepare` keeps what was sent (bytes) and working-size pictures in `Prepared.state`,
never full-resolution pixels; only `assemble` decodes those (see `assembles_full_size`).
`smaller(...)` gives the out-of-memory retry its request one resolution step lower.
"""

from __future__ import annotations

import random
import re
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import ClassVar, Generic, TypeVar

from PIL import Image

from backend import limits
from backend.requests import InvalidRequest, RequestBase
from backend.settings import Settings

R = TypeVar("R", bound=RequestBase)
S = TypeVar("S")

# {role: {field: value}}: what binding sets on the template's nodes (JSON values for ComfyUI).
RoleValues = dict[str, dict[str, object]]
Outputs = Mapping[str, list[Image.Image]]


@dataclass(frozen=True)
class Prepared:
    """Everything a submission needs, computed before touching ComfyUI.

    `values` are role bindings except file names (the runner adds those after uploading
    `uploads`); `optional_roles` are bound only when the template has them; `state` is what
    `assemble` needs (the full-resolution input, masks, geometry); `notes` are sentences for
    the person (inputs scaled, pads adjusted, …) that travel on to `Finished.notes`.
    """

    mode: str
    seed: int
    uploads: Mapping[str, bytes]
    values: Mapping[str, Mapping[str, object]]
    optional_roles: frozenset[str] = frozenset()
    diffusion_model: str | None = None
    work_size: tuple[int, int] | None = None
    state: object = None
    notes: tuple[str, ...] = ()

    def state_as(self, kind: type[S]) -> S:
        """`state`, checked to be what this mode's `prepare` put there."""
        if not isinstance(self.state, kind):
            raise TypeError(f"{self.mode}: prepared state is {type(self.state).__name__}, "
                            f"not {kind.__name__}")
        return self.state

    def bindings(self, template_roles: Collection[str], files: Mapping[str, str]) -> RoleValues:
        """The role values for one template: an optional role the template lacks is left out
        (any other missing role fails in bind(), naming it), plus the uploaded file names."""
        values: RoleValues = {
            role: dict(fields)
            for role, fields in self.values.items()
            if role in template_roles or role not in self.optional_roles
        }
        for role, name in files.items():
            values[role] = {"file": name}
        return values


@dataclass(frozen=True)
class Assembled:
    """An operation's result: the pictures, and extras such as {"mask": the mask used}."""

    images: list[Image.Image]
    extras: dict[str, Image.Image] = field(default_factory=dict)


def model_output(outputs: Outputs) -> Assembled:
    """The result of the modes whose answer is the model's output as it is."""
    return Assembled(list(outputs.get("output", [])))


class Operation(ABC, Generic[R]):
    """One mode's steps (see the module docstring for the order the runner calls them in)."""

    # An output role whose branch runs first, alone, for `check_precheck` (None: no precheck).
    precheck_role: ClassVar[str | None] = None
    # `assemble` decodes the input at full resolution (the masked modes' composite): the job
    # runner lets one such assemble run at a time, which bounds the studio's memory.
    assembles_full_size: ClassVar[bool] = False

    @abstractmethod
    def validate(self, request: R, settings: Settings) -> None: ...

    @abstractmethod
    def prepare(self, request: R, settings: Settings) -> Prepared: ...

    def check_precheck(self, prepared: Prepared, images: list[Image.Image]) -> None:
        """Refuse (InvalidRequest) after the precheck branch ran; by default accept."""

    def assemble(self, prepared: Prepared, outputs: Outputs) -> Assembled:
        return model_output(outputs)

    def smaller(
        self, request: R, work_size: tuple[int, int], pixels: float, settings: Settings
    ) -> tuple[R, Settings]:
        """The request and settings for a retry at `pixels` times the working size's pixels
        (same seed, set by the caller): by default a smaller sampling budget."""
        width, height = work_size
        return request, replace(settings, max_sampling_pixels=int(width * height * pixels))


# --- checks of the common fields --------------------------------------------------------


# A lone UTF-16 half (it cannot be encoded: JSON to ComfyUI, the PNG's text, the library all
# failed on it with a 500) or a control character other than tab and line breaks (invisible,
# never meant: pasted from a PDF or mis-decoded text). Refused, not stripped: the studio never
# runs something other than what was typed, and the sentence says what to remove.
_BROKEN = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def check_text(text: str, field: str, what: str) -> None:
    """Refuse text the studio cannot pass on as typed (`what` is "The prompt", …)."""
    if _BROKEN.search(text):
        raise InvalidRequest(
            f"{what} contains a broken character (an unpaired surrogate); remove it.", field
        )
    control = _CONTROL.search(text)
    if control:
        raise InvalidRequest(
            f"{what} contains an invisible control character (U+{ord(control.group()):04X}); "
            "remove it.",
            field,
        )


def check_common(request: RequestBase) -> None:
    if request.seed is not None:
        if isinstance(request.seed, bool) or not isinstance(request.seed, int):
            raise InvalidRequest("Seed must be a whole number.", "seed")
        if not limits.SEED.low <= request.seed <= limits.SEED.high:
            raise InvalidRequest(
                f"Seed {request.seed} is out of range; use {limits.SEED.low} to "
                f"{limits.SEED.high} (or leave it empty for a random seed).",
                "seed",
            )
    if request.steps is not None:
        limits.STEPS.check(request.steps, "steps")
    if request.cfg is not None:
        limits.CFG.check(request.cfg, "cfg")
    if not isinstance(request.negative_prompt, str):
        raise InvalidRequest("The negative prompt must be text.", "negative_prompt")
    check_text(request.negative_prompt, "negative_prompt", "The negative prompt")
    if request.variant is not None and not _is_name(request.variant):
        raise InvalidRequest(
            f"Variant {request.variant!r} is not a template variant name "
            "(letters, digits, '-' and '_').",
            "variant",
        )


def _is_name(text: str) -> bool:
    return bool(text) and all(c.isalnum() or c in "-_" for c in text)


def check_prompt(
    prompt: object, *, required: bool = True, field: str = "prompt", what: str = "The prompt"
) -> None:
    if not isinstance(prompt, str):
        raise InvalidRequest(f"{what} must be text.", field)
    check_text(prompt, field, what)
    if required and not prompt.strip():
        raise InvalidRequest("Write a prompt: describe what you want to see.", field)


def check_image_present(image: object, field: str = "image") -> None:
    if image is None or (isinstance(image, bytes | bytearray) and not image):
        raise InvalidRequest("Add an image first.", field)
    if not isinstance(image, Image.Image | bytes | bytearray):
        raise InvalidRequest("The image must be a picture file or an image.", field)


def check_grow_feather(grow: object, feather: object) -> None:
    """The masked modes' grow and feather knobs, in input pixels."""
    limits.GROW.check(grow, "grow")
    limits.FEATHER.check(feather, "feather")


def resolve_seed(seed: int | None) -> int:
    return random.randint(limits.SEED.low, limits.SEED.high) if seed is None else seed

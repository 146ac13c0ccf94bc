"""What a mode declares about itself, once (`ModeSpec`), and the small types it is made of.

Every table the studio used to copy per mode (settings, roles, readiness, metrics labels, API
ids, tabs, send-to buttons, warm-up) is derived from these declarations at call time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

from PIL import Image, ImageDraw

from backend import limits
from backend.limits import Knob
from backend.operations.base import Operation
from backend.operations.families import ModelFamily
from backend.requests import ImageInput, RequestBase
from backend.settings import Settings

R = TypeVar("R", bound=RequestBase)


class InputKind(Enum):
    PROMPT = "prompt"    # the main text box
    TEXT = "text"        # another line of words (a region's name)
    IMAGE = "image"      # one picture
    IMAGES = "images"    # 1 to limits.REFERENCES.high pictures, in order
    MASK = "mask"        # painted over the IMAGE input (white = change)
    NUMBER = "number"    # a knob with limits
    CHOICE = "choice"    # one of a few named values (`choices`; the first is the default)


@dataclass(frozen=True)
class ModeInput:
    """One thing a mode takes. `name` is the request's field; numbers carry their `knob`
    (limits) and the `default` the UI starts at; `api_param` is the API's name for it when
    it differs."""

    name: str
    kind: InputKind
    label: str
    required: bool = True
    knob: Knob | None = None
    default: float | None = None
    placeholder: str = ""
    api_param: str | None = None
    choices: tuple[tuple[str, str], ...] = ()     # CHOICE: (label, value), default first

    def __post_init__(self) -> None:
        if (self.kind is InputKind.NUMBER) != (self.knob is not None):
            raise ValueError(f"input {self.name!r}: a knob goes with NUMBER inputs, only")
        if (self.kind is InputKind.CHOICE) != bool(self.choices):
            raise ValueError(f"input {self.name!r}: choices go with CHOICE inputs, only")

    @property
    def values(self) -> tuple[str, ...]:
        """A CHOICE's values, the default first."""
        return tuple(value for _, value in self.choices)


@dataclass(frozen=True)
class SendTo:
    """This mode takes a "Send result to" image: the button's short label and its place."""

    label: str
    order: int


class ApiRoute(Enum):
    GENERATIONS = "/v1/images/generations"
    EDITS = "/v1/images/edits"


@dataclass(frozen=True)
class ApiInput:
    """What an API route read, for a mode to turn into its request. Seed, steps, CFG, variant
    and negative prompt are set afterwards, per image produced."""

    fields: Mapping[str, object]      # the JSON body or the form's text fields, as sent
    prompt: str
    images: tuple[bytes, ...]
    mask: ImageInput | None           # the studio's mask, white = change (PNG bytes as a
                                      # rule: OpenAI's semantics already applied)
    settings: Settings


@dataclass(frozen=True)
class ApiSpec(Generic[R]):
    """`models`: the ids on /v1/models (the first is the canonical one; a template variant
    adds `<id>-<variant>`). `shares_default`: the route's default model (its first mode's
    id) also picks this mode when what was sent fits this mode's inputs better — a mask, or
    several images (qwen-image-edit with a mask is an inpaint)."""

    models: tuple[str, ...]
    route: ApiRoute
    build: Callable[[ApiInput], R]
    shares_default: bool = False


@dataclass(frozen=True)
class WarmupInputs:
    """What a warm-up request may use: a small square picture with one clear object, a mask
    over that object, a prompt that draws it and an instruction that changes it."""

    image: Image.Image
    mask: Image.Image
    prompt: str
    instruction: str

    @classmethod
    def sample(cls, side: int = 256) -> WarmupInputs:
        """A red ball on a table (and a mask over the ball): small, with one clear object."""
        image = Image.new("RGB", (side, side), (222, 196, 160))
        ImageDraw.Draw(image).ellipse(_box(side, 80 / 256, 176 / 256), fill=(200, 30, 30))
        mask = Image.new("L", (side, side), 0)
        ImageDraw.Draw(mask).rectangle(_box(side, 96 / 256, 160 / 256), fill=255)
        return cls(image, mask, "a red ball on a wooden table", "make the ball blue")


def _box(side: int, low: float, high: float) -> tuple[int, int, int, int]:
    a, b = round(side * low), round(side * high)
    return a, a, b, b


@dataclass(frozen=True)
class ModeSpec(Generic[R]):
    """One mode, declared once (built-in modes in backend/modes/<name>.py).

    `roles` are the template roles it needs (a template lacking one fails at load, naming
    it); `family` the models it runs on (swap cost, fit, preflight files, sampler knobs);
    `peak_vram_gb` the default peak (STUDIO_PEAK_VRAM_<NAME> overrides it); `warmup` makes
    a tiny request; `order` places its tab; `send_to` is None when it takes no sent image.
    """

    name: str
    title: str
    request_type: type[R]
    operation: Operation[R]
    roles: frozenset[str]
    family: ModelFamily
    peak_vram_gb: float
    inputs: tuple[ModeInput, ...]
    warmup: Callable[[WarmupInputs], R]
    order: int
    api: ApiSpec[R] | None = None
    send_to: SendTo | None = None

    def peak_vram(self, settings: Settings) -> float:
        return settings.peak_vram_overrides.get(self.name, self.peak_vram_gb)

    def input(self, name: str) -> ModeInput | None:
        return next((i for i in self.inputs if i.name == name), None)

    def has(self, kind: InputKind) -> bool:
        return any(i.kind is kind for i in self.inputs)

    @property
    def max_images(self) -> int:
        """How many pictures it takes: 0, 1, or up to limits.REFERENCES.high."""
        if self.has(InputKind.IMAGES):
            return limits.REFERENCES.high
        return 1 if self.has(InputKind.IMAGE) else 0

    @property
    def prompt_required(self) -> bool:
        return any(i.kind is InputKind.PROMPT and i.required for i in self.inputs)

    def request_from(self, values: Mapping[str, object]) -> R:
        """A request built by field name (the generic tab); `validate` checks every value."""
        construct: Callable[..., R] = self.request_type
        return construct(**values)

"""An app as a mode: its request type (one field per control, so history, metadata and the
library keep every value like any mode's), its operation (controls → role values for the one
binder, backend/workflows/binding.py) and its `ModeSpec`, registered like a built-in mode.

An app that cannot be used is registered too (`broken_spec`), so the sidebar and /healthz show
it as not ready with the reason, and a job for it is refused with the same sentence.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from backend.apps.app import App
from backend.apps.controls import Control, ControlKind
from backend.limits import FloatKnob, IntKnob, Knob
from backend.modes import (
    ApiInput,
    ApiRoute,
    ApiSpec,
    InputKind,
    ModeInput,
    ModeSpec,
    WarmupInputs,
)
from backend.operations.base import (
    Operation,
    Prepared,
    RoleValues,
    check_common,
    check_image_present,
    check_prompt,
    check_text,
    resolve_seed,
)
from backend.operations.families import ModelFamily
from backend.operations.images import decode_image, encode_png
from backend.operations.inputs import load_input
from backend.operations.masks import is_empty, to_mask
from backend.requests import ImageInput, InvalidRequest, RequestBase
from backend.settings import Settings

APP_ORDER = 1000   # app tabs and models come after every built-in mode
NO_MODEL = ModelFamily("a workflow app", lambda settings: {})


@dataclass(frozen=True)
class AppRequest(RequestBase):
    """What every app's request has; each app's own type adds one field per parameter."""

    prompt: str = ""
    image: ImageInput | None = None
    mask: ImageInput | None = None

    def param(self, name: str) -> object:
        return vars(self)[name]


def request_type(name: str, controls: tuple[Control, ...]) -> type[AppRequest]:
    """The app's request dataclass: AppRequest plus its params, defaulting to the workflow's
    values; `mode` is the app's name (the registry checks it)."""
    fields = [
        (c.name, object, dataclasses.field(default=c.default, kw_only=True))
        for c in controls if c.is_param
    ]
    made = dataclasses.make_dataclass(
        "AppRequest_" + name.replace("-", "_"), fields, bases=(AppRequest,), frozen=True,
        namespace={"mode": name},
    )
    return cast("type[AppRequest]", made)


class AppOperation(Operation[AppRequest]):
    """Binds the controls' values to their roles; the result is the #output as ComfyUI made
    it. The picture goes as sent (up to `max_result_pixels`): the workflow scales it if it
    wants to."""

    def __init__(self, app: App, controls: tuple[Control, ...]) -> None:
        self.app = app
        self.controls = controls

    def validate(self, request: AppRequest, settings: Settings) -> None:
        check_common(request)
        for control in self.controls:
            if control.kind is ControlKind.IMAGE:
                check_image_present(request.image)
            elif control.kind is ControlKind.MASK:
                check_image_present(request.mask, "mask")
            elif control.kind is ControlKind.PROMPT:
                check_prompt(request.prompt, required=False)
            elif control.is_param:
                check_param(control, request.param(control.name))

    def prepare(self, request: AppRequest, settings: Settings) -> Prepared:
        notes: list[str] = []
        uploads: dict[str, bytes] = {}
        work_size: tuple[int, int] | None = None
        if request.image is not None and "image" in self.app.template.roles:
            budget = dataclasses.replace(settings, max_sampling_pixels=settings.max_result_pixels)
            source = load_input(request.image, budget, notes, upscale_small=False)
            uploads["image"] = source.png()
            work_size = source.work.size
            if request.mask is not None and "mask" in self.app.template.roles:
                painted = decode_image(request.mask, max_pixels=settings.max_input_pixels,
                                       field="mask", gray=True)
                mask = to_mask(painted, work_size)
                if is_empty(mask):
                    raise InvalidRequest("The mask is empty: paint the area to change.", "mask")
                uploads["mask"] = encode_png(mask)
        seed = resolve_seed(request.seed)
        values: RoleValues = {}
        for control in self.controls:
            value: object = None
            if control.kind is ControlKind.PROMPT:
                value = request.prompt
            elif control.kind is ControlKind.NEGATIVE:
                value = request.negative_prompt
            elif control.kind is ControlKind.SEED:
                value = seed
            elif control.kind is ControlKind.STEPS:
                value = request.steps
            elif control.is_param:
                value = request.param(control.name)
            if value is not None:
                for role in control.roles:
                    values.setdefault(role, {})[control.field] = value
        return Prepared(mode=self.app.name, seed=seed, uploads=uploads, values=values,
                        work_size=work_size, notes=tuple(notes))


def check_param(control: Control, value: object) -> None:
    """A param's value against its control (the API sends text: from_api converts first)."""
    label = control.label
    if value is None:
        return
    if control.kind is ControlKind.CHOICE:
        if control.options and value not in control.options:
            raise InvalidRequest(
                f"{label} must be one of: {', '.join(control.options)} (got {value!r}).",
                control.name)
    elif control.kind is ControlKind.BOOL:
        if not isinstance(value, bool):
            raise InvalidRequest(f"{label} must be true or false.", control.name)
    elif control.kind is ControlKind.TEXT:
        if not isinstance(value, str):
            raise InvalidRequest(f"{label} must be text.", control.name)
        check_text(value, control.name, label)
    else:
        knob_of(control).check(value, control.name)


def knob_of(control: Control) -> Knob:
    """A number control's limits as a knob (no limit known: the widest)."""
    if control.kind in (ControlKind.INT, ControlKind.SEED, ControlKind.STEPS):
        return IntKnob(control.label, int(control.low if control.low is not None else -2**53),
                       int(control.high if control.high is not None else 2**53),
                       int(control.step or 1))
    return FloatKnob(control.label, control.low if control.low is not None else -1e308,
                     control.high if control.high is not None else 1e308, control.step or 0.01)


def parse_param(control: Control, raw: object) -> object:
    """A form or JSON value → the control's type (InvalidRequest says what was wrong)."""
    if raw is None or not isinstance(raw, str):
        return raw
    text = raw.strip()
    try:
        if control.kind is ControlKind.INT:
            return int(text)
        if control.kind is ControlKind.FLOAT:
            return float(text)
    except ValueError:
        raise InvalidRequest(f"{control.label} must be a number (got {raw!r}).",
                             control.name) from None
    if control.kind is ControlKind.BOOL:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise InvalidRequest(f"{control.label} must be true or false.", control.name)
    return raw


def mode_inputs(controls: tuple[Control, ...]) -> tuple[ModeInput, ...]:
    """The controls as the registry's input declarations (API checks, restore, metadata)."""
    out: list[ModeInput] = []
    for c in controls:
        if c.kind is ControlKind.IMAGE:
            out.append(ModeInput("image", InputKind.IMAGE, c.label))
        elif c.kind is ControlKind.MASK:
            out.append(ModeInput("mask", InputKind.MASK, c.label))
        elif c.kind is ControlKind.PROMPT:
            out.append(ModeInput("prompt", InputKind.PROMPT, c.label, required=False))
        elif c.kind in (ControlKind.INT, ControlKind.FLOAT):
            default = c.default if isinstance(c.default, int | float) else None
            out.append(ModeInput(c.name, InputKind.NUMBER, c.label, knob=knob_of(c),
                                 default=default))
        elif c.is_param:
            out.append(ModeInput(c.name, InputKind.TEXT, c.label, required=False))
    return tuple(out)


def app_spec(app: App, controls: tuple[Control, ...], order: int) -> ModeSpec[AppRequest]:
    """The app as a mode: API model `app-<stem>` on /v1/images/edits when it takes a picture,
    else /v1/images/generations."""
    made = request_type(app.name, controls)
    construct: Callable[..., AppRequest] = made    # its params are fields of their own
    params = [c for c in controls if c.is_param]

    def build(call: ApiInput) -> AppRequest:
        values: dict[str, object] = {c.name: parse_param(c, call.fields[c.name])
                                     for c in params if c.name in call.fields}
        image = call.images[0] if call.images else None
        return construct(prompt=call.prompt, image=image, mask=call.mask, **values)

    def warmup(inputs: WarmupInputs) -> AppRequest:
        return made(prompt=inputs.prompt, image=inputs.image, mask=inputs.mask, seed=0)

    route = ApiRoute.EDITS if app.takes_image else ApiRoute.GENERATIONS
    return ModeSpec(
        name=app.name,
        title=app.title,
        request_type=made,
        operation=AppOperation(app, controls),
        roles=frozenset({"output"}),
        family=NO_MODEL,
        peak_vram_gb=0.0,
        inputs=mode_inputs(controls),
        warmup=warmup,
        order=order,
        api=ApiSpec(models=(app.name,), route=route, build=build),
    )


class BrokenOperation(Operation[AppRequest]):
    """An app that cannot be used: every job is refused with the reason."""

    def __init__(self, problem: str) -> None:
        self.problem = problem

    def validate(self, request: AppRequest, settings: Settings) -> None:
        raise InvalidRequest(self.problem)

    def prepare(self, request: AppRequest, settings: Settings) -> Prepared:
        raise InvalidRequest(self.problem)


def broken_spec(name: str, title: str, problem: str, order: int) -> ModeSpec[AppRequest]:
    """A registry entry for an app with a problem: not ready, with the reason, no API model."""
    made = request_type(name, ())
    return ModeSpec(
        name=name, title=title, request_type=made, operation=BrokenOperation(problem),
        roles=frozenset(), family=NO_MODEL, peak_vram_gb=0.0, inputs=(),
        warmup=lambda inputs: made(seed=0), order=order,
    )

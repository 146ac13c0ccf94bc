"""Generate: text to image with Qwen-Image (template `generate.json`, variant "turbo" = the
4-step UNet)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from backend import limits
from backend.api.schemas import parse_size
from backend.limits import IntKnob
from backend.modes.spec import (
    ApiInput,
    ApiRoute,
    ApiSpec,
    InputKind,
    ModeInput,
    ModeSpec,
    WarmupInputs,
)
from backend.operations.base import Operation, Prepared, check_common, check_prompt
from backend.operations.families import (
    DIFFUSION_OPTIONAL,
    DIFFUSION_ROLES,
    GENERATION_MODEL,
    diffusion_values,
    generate_sampling,
)
from backend.operations.images import megapixels
from backend.operations.sizing import nearest_multiples, round_to_grid, working_size
from backend.requests import InvalidRequest, RequestBase
from backend.settings import Settings

NAME = "generate"


@dataclass(frozen=True)
class GenerateRequest(RequestBase):
    mode: ClassVar[str] = NAME
    prompt: str
    width: int = 1024
    height: int = 1024


class GenerateOperation(Operation[GenerateRequest]):
    def validate(self, request: GenerateRequest, settings: Settings) -> None:
        check_common(request)
        check_prompt(request.prompt)
        check_side("width", limits.WIDTH, request.width)
        check_side("height", limits.HEIGHT, request.height)
        pixels = request.width * request.height
        if pixels > settings.max_generate_pixels:
            w, h = working_size(
                request.width, request.height,
                max_pixels=settings.max_generate_pixels, upscale_small=False,
            )
            raise InvalidRequest(
                f"{request.width}×{request.height} is {megapixels(pixels)}; the limit is "
                f"{megapixels(settings.max_generate_pixels)} — try {w}×{h} (same shape).",
                "width",
            )

    def prepare(self, request: GenerateRequest, settings: Settings) -> Prepared:
        sampling = generate_sampling(request, settings)
        values = diffusion_values(sampling, settings, request.prompt, request.negative_prompt)
        values["latent"] = {"width": request.width, "height": request.height, "batch": 1}
        return Prepared(
            mode=NAME,
            seed=sampling.seed,
            uploads={},
            values=values,
            optional_roles=DIFFUSION_OPTIONAL,
            diffusion_model=sampling.unet,
            work_size=(request.width, request.height),
        )

    def smaller(
        self, request: GenerateRequest, work_size: tuple[int, int], pixels: float,
        settings: Settings,
    ) -> tuple[GenerateRequest, Settings]:
        # The size is the request's own: shrink it, on the grid and never below the minimum.
        factor = pixels**0.5
        width, height = work_size
        smaller = replace(
            request,
            width=max(limits.WIDTH.low, round_to_grid(width * factor)),
            height=max(limits.HEIGHT.low, round_to_grid(height * factor)),
        )
        return smaller, settings


def check_side(field: str, knob: IntKnob, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{knob.label} must be a whole number of pixels.", field)
    if not knob.low <= value <= knob.high:
        raise InvalidRequest(
            f"{knob.label} {value} is out of range; use {knob.low} to {knob.high}.", field
        )
    if value % limits.GRID:
        low, high = nearest_multiples(value)
        raise InvalidRequest(
            f"{knob.label} {value} is not a multiple of {limits.GRID} — try {low} or {high}.",
            field,
        )


def from_api(call: ApiInput) -> GenerateRequest:
    width, height = parse_size(call.fields.get("size"), call.settings.max_generate_pixels)
    return GenerateRequest(prompt=call.prompt, width=width, height=height)


def warmup(inputs: WarmupInputs) -> GenerateRequest:
    side = inputs.image.width
    return GenerateRequest(prompt=inputs.prompt, width=side, height=side, seed=0, steps=1)


SPEC = ModeSpec(
    name=NAME,
    title="Generate",
    request_type=GenerateRequest,
    operation=GenerateOperation(),
    roles=DIFFUSION_ROLES | {"latent"},
    family=GENERATION_MODEL,
    peak_vram_gb=30.0,
    inputs=(
        ModeInput("prompt", InputKind.PROMPT, "Prompt"),
        ModeInput("width", InputKind.NUMBER, "Width", knob=limits.WIDTH, default=1024),
        ModeInput("height", InputKind.NUMBER, "Height", knob=limits.HEIGHT, default=1024),
    ),
    warmup=warmup,
    order=10,
    api=ApiSpec(models=("qwen-image",), route=ApiRoute.GENERATIONS, build=from_api),
)

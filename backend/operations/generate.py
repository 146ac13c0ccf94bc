"""Text to image with Qwen-Image (template `generate.json`, variant "turbo" = 4-step UNet)."""

from __future__ import annotations

from dataclasses import dataclass

from backend.settings import Settings

from .base import (
    DIFFUSION_OPTIONAL,
    Finished,
    InvalidRequest,
    Outputs,
    Prepared,
    RequestBase,
    check_common,
    check_prompt,
    diffusion_values,
    generate_sampling,
    model_output,
)
from .images import megapixels
from .sizing import GRID, nearest_multiples, working_size

MIN_SIDE = 256
MAX_SIDE = 2048


@dataclass(frozen=True)
class GenerateRequest(RequestBase):
    mode = "generate"
    prompt: str
    width: int = 1024
    height: int = 1024


class GenerateOperation:
    mode = "generate"

    def validate(self, request: GenerateRequest, settings: Settings) -> None:
        check_common(request)
        check_prompt(request.prompt)
        check_side("width", "Width", request.width)
        check_side("height", "Height", request.height)
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
            mode=self.mode,
            seed=sampling.seed,
            uploads={},
            values=values,
            optional_roles=DIFFUSION_OPTIONAL,
            diffusion_model=sampling.unet,
            work_size=(request.width, request.height),
        )

    def finish(self, prepared: Prepared, outputs: Outputs) -> Finished:
        return model_output(outputs)


def check_side(field: str, label: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{label} must be a whole number of pixels.", field)
    if not MIN_SIDE <= value <= MAX_SIDE:
        raise InvalidRequest(
            f"{label} {value} is out of range; use {MIN_SIDE} to {MAX_SIDE}.", field
        )
    if value % GRID:
        low, high = nearest_multiples(value)
        raise InvalidRequest(
            f"{label} {value} is not a multiple of {GRID} — try {low} or {high}.", field
        )

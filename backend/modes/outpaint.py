"""Outpaint: extend the canvas and let the edit model fill the new area (template
`outpaint.json`, ImagePadForOutpaint → masked sampling).

The padded canvas is scaled to the sampling budget and its sides aligned to 16 (the pads are
adjusted, and a note says so). The result is the full-resolution canvas: the model's output
scaled up, with the input pasted back unchanged at (left, top). With `feathering`, the input's
edges that border new area blend into it over that many pixels; elsewhere it is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from PIL import Image

from backend import limits
from backend.api.schemas import optional_int
from backend.modes.spec import (
    ApiInput,
    ApiRoute,
    ApiSpec,
    InputKind,
    ModeInput,
    ModeSpec,
    SendTo,
    WarmupInputs,
)
from backend.operations.base import (
    Assembled,
    Operation,
    Outputs,
    Prepared,
    check_common,
    check_image_present,
    check_prompt,
)
from backend.operations.families import (
    DIFFUSION_OPTIONAL,
    DIFFUSION_ROLES,
    EDIT_MODEL,
    diffusion_values,
    edit_sampling,
)
from backend.operations.images import decode_image, encode_png, flatten, megapixels
from backend.operations.masks import scale_pixels
from backend.operations.sizing import OutpaintGeometry, outpaint_geometry
from backend.requests import ImageInput, InvalidRequest, RequestBase
from backend.settings import Settings

NAME = "outpaint"
SIDES = ("left", "top", "right", "bottom")
FEATHERING = 24  # where the UI's seam slider starts (px); a request without it feathers 0


@dataclass(frozen=True)
class OutpaintRequest(RequestBase):
    mode: ClassVar[str] = NAME
    image: ImageInput
    left: int = 0
    top: int = 0
    right: int = 0
    bottom: int = 0
    prompt: str = ""
    feathering: int = 0

    @property
    def pads(self) -> tuple[int, int, int, int]:
        return self.left, self.top, self.right, self.bottom


@dataclass(frozen=True)
class OutpaintState:
    full: Image.Image
    geometry: OutpaintGeometry
    feathering: int


class OutpaintOperation(Operation[OutpaintRequest]):
    def validate(self, request: OutpaintRequest, settings: Settings) -> None:
        check_common(request)
        check_image_present(request.image)
        pad = settings.pad_knob
        for side, value in zip(SIDES, request.pads, strict=True):
            pad.check(value, side)
        if not any(request.pads):
            raise InvalidRequest("Extend at least one side by some pixels.", "left")
        check_prompt(request.prompt, required=False)
        limits.FEATHERING.check(request.feathering, "feathering")

    def prepare(self, request: OutpaintRequest, settings: Settings) -> Prepared:
        notes: list[str] = []
        full = flatten(decode_image(request.image, max_pixels=settings.max_input_pixels,
                                    notes=notes))
        geometry = outpaint_geometry(*full.size, request.pads,
                                     max_pixels=settings.max_sampling_pixels)
        width, height = geometry.canvas_full
        if width * height > settings.max_input_pixels:
            raise InvalidRequest(
                f"The result would be {width}×{height} = {megapixels(width * height)}; the "
                f"limit is {megapixels(settings.max_input_pixels)}. Extend by less.",
                "right" if request.right else "left",
            )
        if geometry.adjusted:
            got = ", ".join(f"{s} {p}" for s, p in zip(SIDES, geometry.pads_full, strict=True))
            notes.append(f"Extended by {got} px so the canvas fits the model's 16-pixel grid.")
        work = full.resize(geometry.image_work, Image.Resampling.LANCZOS)
        sampling = edit_sampling(request, settings)
        values = diffusion_values(sampling, settings, request.prompt, request.negative_prompt)
        left, top, right, bottom = geometry.pads_work
        values["pad"] = {
            "left": left, "top": top, "right": right, "bottom": bottom,
            "feathering": scale_pixels(request.feathering, geometry.image_work[0] / full.width),
        }
        return Prepared(
            mode=NAME,
            seed=sampling.seed,
            uploads={"image": encode_png(work)},
            values=values,
            optional_roles=DIFFUSION_OPTIONAL,
            diffusion_model=sampling.unet,
            work_size=geometry.canvas_work,
            state=OutpaintState(full, geometry, request.feathering),
            notes=tuple(notes),
        )

    def assemble(self, prepared: Prepared, outputs: Outputs) -> Assembled:
        state = prepared.state_as(OutpaintState)
        return Assembled([paste_back(out, state) for out in outputs.get("output", [])])


def paste_back(generated: Image.Image, state: OutpaintState) -> Image.Image:
    geometry = state.geometry
    canvas = generated.convert("RGB").resize(geometry.canvas_full, Image.Resampling.LANCZOS)
    left, top = geometry.pads_full[0], geometry.pads_full[1]
    mask = edge_ramp(state.full.size, geometry.pads_full, state.feathering)
    canvas.paste(state.full, (left, top), mask)
    return canvas


def edge_ramp(
    size: tuple[int, int], pads: tuple[int, int, int, int], feathering: int
) -> Image.Image | None:
    """Opaque inside, fading to the new area over `feathering` px on the extended sides only."""
    if feathering <= 0:
        return None
    width, height = size
    x = np.arange(width, dtype=np.float32)
    y = np.arange(height, dtype=np.float32)
    ones_x, ones_y = np.ones(width, np.float32), np.ones(height, np.float32)
    left, top, right, bottom = pads
    fx = np.minimum(
        np.clip((x + 1) / (feathering + 1), 0, 1) if left else ones_x,
        np.clip((width - x) / (feathering + 1), 0, 1) if right else ones_x,
    )
    fy = np.minimum(
        np.clip((y + 1) / (feathering + 1), 0, 1) if top else ones_y,
        np.clip((height - y) / (feathering + 1), 0, 1) if bottom else ones_y,
    )
    alpha = np.minimum.outer(fy, fx)
    return Image.fromarray(np.round(alpha * 255).astype(np.uint8), "L")


def from_api(call: ApiInput) -> OutpaintRequest:
    pad = call.settings.pad_knob
    pads: dict[str, int] = {}
    for side in SIDES:
        param = f"pad_{side}"
        value = optional_int(call.fields.get(param), param) or 0
        # Checked here so the error names the form field (pad_right), not the request's.
        if not pad.low <= value <= pad.high:
            raise InvalidRequest(
                f"'{param}' must be between {pad.low} and {pad.high} pixels (got {value}).",
                param,
            )
        pads[side] = value
    if not any(pads.values()):
        raise InvalidRequest(
            "Outpainting needs at least one of pad_left, pad_top, pad_right, pad_bottom.",
            "pad_left",
        )
    return OutpaintRequest(
        image=call.images[0], prompt=call.prompt,
        left=pads["left"], top=pads["top"], right=pads["right"], bottom=pads["bottom"],
    )


def warmup(inputs: WarmupInputs) -> OutpaintRequest:
    return OutpaintRequest(image=inputs.image, right=64, prompt="more table", seed=0, steps=1)


def _pad(side: str) -> ModeInput:
    return ModeInput(side, InputKind.NUMBER, side.capitalize(), knob=limits.PAD, default=0,
                     api_param=f"pad_{side}")


SPEC = ModeSpec(
    name=NAME,
    title="Outpaint",
    request_type=OutpaintRequest,
    operation=OutpaintOperation(),
    roles=DIFFUSION_ROLES | {"image", "pad"},
    family=EDIT_MODEL,
    peak_vram_gb=30.0,
    inputs=(
        ModeInput("image", InputKind.IMAGE, "Picture"),
        *(_pad(side) for side in SIDES),
        ModeInput("prompt", InputKind.PROMPT, "What the new area shows (optional)",
                  required=False),
        ModeInput("feathering", InputKind.NUMBER, "Seam feathering (px)",
                  knob=limits.FEATHERING, default=FEATHERING),
    ),
    warmup=warmup,
    order=70,
    api=ApiSpec(models=("qwen-image-outpaint",), route=ApiRoute.EDITS, build=from_api),
    send_to=SendTo("Outpaint", 3),
)

"""Outpaint: extend the canvas and let the edit model fill the new area (template
`outpaint.json`, ImagePadForOutpaint → masked sampling).

The padded canvas is scaled to the sampling budget and its sides aligned to 16 (the pads are
adjusted, and a note says so). The result is the full-resolution canvas: the model's output
scaled up, with the input pasted back unchanged at (left, top). With `feathering`, the input's
edges that border new area blend into it over that many pixels; elsewhere it is untouched.

The canvas is at most `max_result_pixels`: a larger one is made at a smaller scale (the input
and the pads alike; a note says so). `plan_canvas` is that arithmetic, from the input's size
alone, so a preview shows exactly the size the result will have. While the job waits and
runs it keeps the input as sent; the full size is decoded only in `assemble`.
"""

from __future__ import annotations

import math
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
from backend.operations.images import megapixels
from backend.operations.inputs import InputImage, header_of, load_input
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
    source: InputImage
    geometry: OutpaintGeometry
    feathering: int


@dataclass(frozen=True)
class CanvasPlan:
    """Where the result's pixels come from: the geometry (at the input's size, or at the
    smaller scale that keeps the canvas within `max_result_pixels`) and the notes to show."""

    geometry: OutpaintGeometry
    notes: tuple[str, ...]

    @property
    def size(self) -> tuple[int, int]:
        """The result's size."""
        return self.geometry.canvas_full


def plan_canvas(
    size: tuple[int, int], pads: tuple[int, int, int, int], settings: Settings
) -> CanvasPlan:
    """The result's geometry for an input of `size` (as displayed) and the requested pads."""
    notes: list[str] = []
    width, height = size
    left, top, right, bottom = pads
    canvas_w, canvas_h = width + left + right, height + top + bottom
    limit = settings.max_result_pixels
    if canvas_w * canvas_h > limit:
        # The same picture at a smaller scale: the input and the pads shrink alike.
        scale = math.sqrt(limit / (canvas_w * canvas_h))
        width, height = max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
        left, top, right, bottom = (max(1, math.floor(p * scale)) if p else 0 for p in pads)
        notes.append(
            f"The result would be {canvas_w}×{canvas_h} ({megapixels(canvas_w * canvas_h)}); "
            f"results are at most {megapixels(limit)}, so the picture was used at "
            f"{width}×{height} and extended by {left}, {top}, {right}, {bottom} px "
            "(left, top, right, bottom)."
        )
    geometry = outpaint_geometry(
        width, height, (left, top, right, bottom), max_pixels=settings.max_sampling_pixels
    )
    if geometry.adjusted:
        got = ", ".join(f"{s} {p}" for s, p in zip(SIDES, geometry.pads_full, strict=True))
        notes.append(f"Extended by {got} px so the canvas fits the model's 16-pixel grid.")
    return CanvasPlan(geometry, tuple(notes))


class OutpaintOperation(Operation[OutpaintRequest]):
    assembles_full_size = True

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
        plan = plan_canvas(header_of(request.image, settings).size, request.pads, settings)
        geometry = plan.geometry
        notes += plan.notes
        source = load_input(
            request.image, settings, notes, sizes=(geometry.image_full, geometry.image_work)
        )
        sampling = edit_sampling(request, settings)
        values = diffusion_values(sampling, settings, request.prompt, request.negative_prompt)
        left, top, right, bottom = geometry.pads_work
        values["pad"] = {
            "left": left, "top": top, "right": right, "bottom": bottom,
            "feathering": scale_pixels(
                request.feathering, geometry.image_work[0] / geometry.image_full[0]
            ),
        }
        return Prepared(
            mode=NAME,
            seed=sampling.seed,
            uploads={"image": source.png()},
            values=values,
            optional_roles=DIFFUSION_OPTIONAL,
            diffusion_model=sampling.unet,
            work_size=geometry.canvas_work,
            state=OutpaintState(source, geometry, request.feathering),
            notes=tuple(notes),
        )

    def assemble(self, prepared: Prepared, outputs: Outputs) -> Assembled:
        state = prepared.state_as(OutpaintState)
        return Assembled([paste_back(out, state) for out in outputs.get("output", [])])


def paste_back(generated: Image.Image, state: OutpaintState) -> Image.Image:
    geometry = state.geometry
    canvas = generated.convert("RGB").resize(geometry.canvas_full, Image.Resampling.LANCZOS)
    left, top = geometry.pads_full[0], geometry.pads_full[1]
    full = state.source.full()
    mask = edge_ramp(full.size, geometry.pads_full, state.feathering)
    canvas.paste(full, (left, top), mask)
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
    # Rounded per axis first: rounding is monotonic, so the minimum of the rounded values is
    # the rounded minimum, and the full-size array is bytes (40 MB at 40 MP), not floats.
    ax = np.round(fx * 255).astype(np.uint8)
    ay = np.round(fy * 255).astype(np.uint8)
    return Image.fromarray(np.minimum.outer(ay, ax), "L")


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

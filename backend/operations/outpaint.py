"""Extend the canvas and let the edit model fill the new area (template `outpaint.json`,
ImagePadForOutpaint → masked sampling).

The padded canvas is scaled to the sampling budget and its sides aligned to 16 (the pads are
adjusted, and a note says so). The result is the full-resolution canvas: the model's output
scaled up, with the input pasted back unchanged at (left, top). With `feathering`, the input's
edges that border new area blend into it over that many pixels; elsewhere it is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from backend.settings import Settings

from .base import (
    DIFFUSION_OPTIONAL,
    ImageInput,
    InvalidRequest,
    Outputs,
    Prepared,
    RequestBase,
    check_common,
    check_image_present,
    check_int,
    check_prompt,
    diffusion_values,
    edit_sampling,
)
from .images import decode_image, encode_png, flatten, megapixels
from .masks import scale_pixels
from .sizing import OutpaintGeometry, outpaint_geometry

SIDES = ("left", "top", "right", "bottom")
MAX_FEATHERING = 256


@dataclass(frozen=True)
class OutpaintRequest(RequestBase):
    mode = "outpaint"
    image: ImageInput
    left: int = 0
    top: int = 0
    right: int = 0
    bottom: int = 0
    prompt: str = ""
    feathering: int = 0


@dataclass(frozen=True)
class OutpaintState:
    full: Image.Image
    geometry: OutpaintGeometry
    feathering: int


class OutpaintOperation:
    mode = "outpaint"

    def validate(self, request: OutpaintRequest, settings: Settings) -> None:
        check_common(request)
        check_image_present(request.image)
        for side in SIDES:
            check_int(getattr(request, side), side, side.capitalize(), 0,
                      settings.max_outpaint_pad)
        if not any(getattr(request, side) for side in SIDES):
            raise InvalidRequest("Extend at least one side by some pixels.", "left")
        check_prompt(request.prompt, required=False)
        check_int(request.feathering, "feathering", "Feathering", 0, MAX_FEATHERING)

    def prepare(self, request: OutpaintRequest, settings: Settings) -> Prepared:
        notes: list[str] = []
        full = flatten(decode_image(request.image, max_pixels=settings.max_input_pixels,
                                    notes=notes))
        pads = (request.left, request.top, request.right, request.bottom)
        geometry = outpaint_geometry(*full.size, pads, max_pixels=settings.max_sampling_pixels)
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
            mode=self.mode,
            seed=sampling.seed,
            uploads={"image": encode_png(work)},
            values=values,
            optional_roles=DIFFUSION_OPTIONAL,
            diffusion_model=sampling.unet,
            work_size=geometry.canvas_work,
            state=OutpaintState(full, geometry, request.feathering),
            notes=tuple(notes),
        )

    def finish(self, prepared: Prepared, outputs: Outputs):
        state: OutpaintState = prepared.state
        return [paste_back(out, state) for out in outputs.get("output", [])], {}


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

"""Repaint the painted area of an image (template `inpaint.json`, LanPaint or
InpaintModelConditioning). The mask is grown here, at full resolution, and the same mask
(feathered) composites the result, so unpainted pixels come back bit-identical.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    check_grow_feather,
    check_image_present,
    check_prompt,
    diffusion_values,
    edit_sampling,
)
from .images import decode_image, encode_png
from .inputs import load_input
from .masks import composite, feather, grow, is_empty, threshold, to_mask


@dataclass(frozen=True)
class InpaintRequest(RequestBase):
    mode = "inpaint"
    image: ImageInput
    mask: ImageInput
    prompt: str
    grow: int = 4
    feather: int = 0


@dataclass(frozen=True)
class InpaintState:
    full: Image.Image
    mask: Image.Image  # full resolution, grown and feathered: what the composite uses


class InpaintOperation:
    mode = "inpaint"

    def validate(self, request: InpaintRequest, settings: Settings) -> None:
        check_common(request)
        check_image_present(request.image)
        check_image_present(request.mask, "mask")
        check_prompt(request.prompt)
        check_grow_feather(request)

    def prepare(self, request: InpaintRequest, settings: Settings) -> Prepared:
        notes: list[str] = []
        source = load_input(request.image, settings, notes)
        painted = decode_image(request.mask, max_pixels=settings.max_input_pixels, field="mask")
        mask = to_mask(painted, source.full.size)
        if is_empty(mask):
            raise InvalidRequest("The mask is empty: paint the area to change.", "mask")
        grown = grow(mask, request.grow)
        # Any coverage of a working pixel counts, so a thin stroke does not vanish when scaled.
        work_mask = threshold(grown.resize(source.work.size, Image.Resampling.BILINEAR), 1)
        sampling = edit_sampling(request, settings)
        values = diffusion_values(sampling, settings, request.prompt, request.negative_prompt)
        # The uploaded mask is already grown; a template's own GrowMask must not grow it again,
        # and FeatherMask (which fades toward the image borders) stays off: the studio
        # feathers the composite mask itself.
        values["grow"] = {"pixels": 0}
        values["feather"] = {"pixels": 0}
        return Prepared(
            mode=self.mode,
            seed=sampling.seed,
            uploads={"image": source.png(), "mask": encode_png(work_mask)},
            values=values,
            optional_roles=DIFFUSION_OPTIONAL | {"grow", "feather"},
            diffusion_model=sampling.unet,
            work_size=source.work.size,
            state=InpaintState(source.full, feather(grown, request.feather)),
            notes=tuple(notes),
        )

    def finish(self, prepared: Prepared, outputs: Outputs):
        state: InpaintState = prepared.state
        images = [composite(state.full, out, state.mask) for out in outputs.get("output", [])]
        return images, {"mask": state.mask}

"""Inpaint: repaint the painted area of an image (template `inpaint.json`, LanPaint, or
`inpaint.conditioning.json`, InpaintModelConditioning). The mask is grown here, at full
resolution, and the same mask (feathered) composites the result, so unpainted pixels come
back bit-identical.

While the job waits and runs it keeps the input as it was sent and the grown mask packed to
bits; the full-resolution input is decoded again only for the composite (`assemble`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from PIL import Image

from backend import limits
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
    check_grow_feather,
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
from backend.operations.images import decode_image, encode_png
from backend.operations.inputs import InputImage, load_input
from backend.operations.masks import (
    PackedMask,
    composite_into,
    feather,
    grow,
    is_empty,
    threshold,
    to_mask,
)
from backend.requests import ImageInput, InvalidRequest, RequestBase
from backend.settings import Settings

NAME = "inpaint"
GROW, FEATHER = 4, 0  # where the knobs start (px)


@dataclass(frozen=True)
class InpaintRequest(RequestBase):
    mode: ClassVar[str] = NAME
    image: ImageInput
    mask: ImageInput
    prompt: str
    grow: int = GROW
    feather: int = FEATHER


@dataclass(frozen=True)
class InpaintState:
    source: InputImage
    mask: PackedMask   # full resolution, grown (not yet feathered)
    feather: int


class InpaintOperation(Operation[InpaintRequest]):
    assembles_full_size = True

    def validate(self, request: InpaintRequest, settings: Settings) -> None:
        check_common(request)
        check_image_present(request.image)
        check_image_present(request.mask, "mask")
        check_prompt(request.prompt)
        check_grow_feather(request.grow, request.feather)

    def prepare(self, request: InpaintRequest, settings: Settings) -> Prepared:
        notes: list[str] = []
        source = load_input(request.image, settings, notes, full_result=True)
        painted = decode_image(request.mask, max_pixels=settings.max_input_pixels, field="mask",
                               gray=True)
        mask = to_mask(painted, source.full_size)
        del painted
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
            mode=NAME,
            seed=sampling.seed,
            uploads={"image": source.png(), "mask": encode_png(work_mask)},
            values=values,
            optional_roles=DIFFUSION_OPTIONAL | {"grow", "feather"},
            diffusion_model=sampling.unet,
            work_size=source.work.size,
            state=InpaintState(source, PackedMask.of(grown), request.feather),
            notes=tuple(notes),
        )

    def assemble(self, prepared: Prepared, outputs: Outputs) -> Assembled:
        state = prepared.state_as(InpaintState)
        mask = feather(state.mask.image(), state.feather)
        images = [composite_into(state.source.full(), out, mask) for out in outputs.get("output", [])]
        return Assembled(images, {"mask": mask})


def from_api(call: ApiInput) -> InpaintRequest:
    if call.mask is None:
        raise InvalidRequest("Inpainting needs a 'mask' file.", "mask")
    return InpaintRequest(image=call.images[0], mask=call.mask, prompt=call.prompt)


def warmup(inputs: WarmupInputs) -> InpaintRequest:
    return InpaintRequest(
        image=inputs.image, mask=inputs.mask, prompt=inputs.instruction, seed=0, steps=1
    )


SPEC = ModeSpec(
    name=NAME,
    title="Inpaint",
    request_type=InpaintRequest,
    operation=InpaintOperation(),
    roles=DIFFUSION_ROLES | {"image", "mask"},
    family=EDIT_MODEL,
    peak_vram_gb=30.0,
    inputs=(
        ModeInput("image", InputKind.IMAGE, "Picture"),
        ModeInput("mask", InputKind.MASK, "Mask"),
        ModeInput("prompt", InputKind.PROMPT, "What to put there"),
        ModeInput("grow", InputKind.NUMBER, "Grow mask (px)", knob=limits.GROW, default=GROW),
        ModeInput("feather", InputKind.NUMBER, "Feather (px)", knob=limits.FEATHER,
                  default=FEATHER),
    ),
    warmup=warmup,
    order=60,
    api=ApiSpec(
        models=("qwen-image-inpaint",), route=ApiRoute.EDITS, build=from_api,
        shares_default=True,
    ),
    send_to=SendTo("Inpaint", 2),
)

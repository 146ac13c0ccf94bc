"""Region edit: edit only the region some words name (template `region_edit.json`):
Florence-2 finds it, SAM 2 outlines it, GrowMask grows it, the edit model repaints it.

The job runner first executes only the #mask_output branch (`precheck_role`) and calls
`check_precheck`: nothing found is the user's error ("Nothing matched ..."), never a silent
whole-image edit. The final result is composited at the input's full resolution with the
mask the model used (scaled up, then feathered), so pixels outside it are unchanged. The
job keeps the input as sent until then; `assemble` decodes the full size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from PIL import Image

from backend import limits
from backend.api.schemas import text
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
    check_text,
)
from backend.operations.families import (
    DIFFUSION_OPTIONAL,
    DIFFUSION_ROLES,
    EDIT_MODEL,
    diffusion_values,
    edit_sampling,
)
from backend.operations.inputs import InputImage, load_input
from backend.operations.masks import composite_into, feather, is_empty, scale_pixels, to_mask
from backend.requests import ImageInput, InvalidRequest, RequestBase
from backend.settings import Settings

NAME = "region_edit"
GROW, FEATHER = 8, 8  # where the knobs start (px)


@dataclass(frozen=True)
class RegionEditRequest(RequestBase):
    mode: ClassVar[str] = NAME
    image: ImageInput
    region: str
    prompt: str
    grow: int = GROW
    feather: int = FEATHER


@dataclass(frozen=True)
class RegionState:
    source: InputImage
    region: str
    feather: int


class RegionEditOperation(Operation[RegionEditRequest]):
    precheck_role = "mask_output"
    assembles_full_size = True

    def validate(self, request: RegionEditRequest, settings: Settings) -> None:
        check_common(request)
        check_image_present(request.image)
        if not isinstance(request.region, str) or not request.region.strip():
            raise InvalidRequest(
                "Name the region to change, e.g. 'the red car' or 'the sky'.", "region"
            )
        if len(request.region) > limits.REGION_CHARS:
            raise InvalidRequest(
                f"Describe the region in at most {limits.REGION_CHARS} characters.", "region"
            )
        check_text(request.region, "region", "The region")
        check_prompt(request.prompt)
        check_grow_feather(request.grow, request.feather)

    def prepare(self, request: RegionEditRequest, settings: Settings) -> Prepared:
        notes: list[str] = []
        source = load_input(request.image, settings, notes, full_result=True)
        sampling = edit_sampling(request, settings)
        values = diffusion_values(sampling, settings, request.prompt, request.negative_prompt)
        values["region"] = {"text": request.region.strip()}
        # Grow is in input pixels; GrowMask works on the working-size mask.
        values["grow"] = {"pixels": scale_pixels(request.grow, source.scale)}
        # FeatherMask fades a mask toward the image borders, not along its own edge: the
        # studio feathers the composite mask itself (in `assemble`), so the template's is off.
        values["feather"] = {"pixels": 0}
        values["grounding_model"] = {"name": settings.models.florence2}
        values["segment_model"] = {"name": settings.models.sam2}
        return Prepared(
            mode=NAME,
            seed=sampling.seed,
            uploads={"image": source.png()},
            values=values,
            optional_roles=DIFFUSION_OPTIONAL | {"feather", "grounding_model", "segment_model"},
            diffusion_model=sampling.unet,
            work_size=source.work.size,
            state=RegionState(source, request.region.strip(), request.feather),
            notes=tuple(notes),
        )

    def check_precheck(self, prepared: Prepared, images: list[Image.Image]) -> None:
        """Refuse to edit when segmentation found nothing."""
        if not images or is_empty(to_mask(images[0])):
            region = prepared.state_as(RegionState).region
            raise InvalidRequest(f"Nothing matched '{region}' — try other words.", "region")

    def assemble(self, prepared: Prepared, outputs: Outputs) -> Assembled:
        state = prepared.state_as(RegionState)
        masks = outputs.get("mask_output", [])
        if not masks:
            raise ValueError("the template's #mask_output produced no image")
        # Scaled softly (no threshold): where the model's mask is 0, the upscaled one is 0 too.
        size = state.source.full_size
        used = masks[0].convert("L").resize(size, Image.Resampling.BILINEAR)
        mask = feather(used, state.feather)
        images = [composite_into(state.source.full(), out, mask) for out in outputs.get("output", [])]
        return Assembled(images, {"mask": mask})


def from_api(call: ApiInput) -> RegionEditRequest:
    region = text(call.fields.get("region"), "region", required=True)
    return RegionEditRequest(image=call.images[0], region=region, prompt=call.prompt)


def warmup(inputs: WarmupInputs) -> RegionEditRequest:
    return RegionEditRequest(
        image=inputs.image, region="the ball", prompt=inputs.instruction, seed=0, steps=1
    )


SPEC = ModeSpec(
    name=NAME,
    title="Region edit",
    request_type=RegionEditRequest,
    operation=RegionEditOperation(),
    roles=DIFFUSION_ROLES | {"image", "region", "grow", "mask_output"},
    family=EDIT_MODEL,
    peak_vram_gb=33.0,
    inputs=(
        ModeInput("image", InputKind.IMAGE, "Picture"),
        ModeInput("region", InputKind.TEXT, "Region", placeholder="the red car"),
        ModeInput("prompt", InputKind.PROMPT, "Instruction"),
        ModeInput("grow", InputKind.NUMBER, "Grow mask (px)", knob=limits.GROW, default=GROW),
        ModeInput("feather", InputKind.NUMBER, "Feather (px)", knob=limits.FEATHER,
                  default=FEATHER),
    ),
    warmup=warmup,
    order=50,
    api=ApiSpec(models=("qwen-image-region-edit",), route=ApiRoute.EDITS, build=from_api),
    send_to=SendTo("Region edit", 4),
)

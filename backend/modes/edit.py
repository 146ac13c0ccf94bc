"""Edit: an instruction edit of one image with Qwen-Image-Edit (template `edit.json`).

The model works at ~1 MP. `output_size` says what the result is: "input" (the default) is
the model's picture resampled to the input's size (capped at `max_result_pixels`; a note
says so), "model" the model's picture as it made it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from PIL import Image

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
from backend.operations.inputs import load_input
from backend.requests import ImageInput, InvalidRequest, RequestBase
from backend.settings import Settings

NAME = "edit"
SAME_AS_INPUT = "input"
AS_MODEL_MADE = "model"
OUTPUT_SIZE = ModeInput(
    "output_size", InputKind.CHOICE, "Output size",
    choices=(("Same as the input", SAME_AS_INPUT), ("As the model made it", AS_MODEL_MADE)),
)


@dataclass(frozen=True)
class EditRequest(RequestBase):
    mode: ClassVar[str] = NAME
    image: ImageInput
    prompt: str
    output_size: str = SAME_AS_INPUT


@dataclass(frozen=True)
class EditState:
    size: tuple[int, int] | None      # the result's size; None: as the model made it


class EditOperation(Operation[EditRequest]):
    def validate(self, request: EditRequest, settings: Settings) -> None:
        check_common(request)
        check_image_present(request.image)
        check_prompt(request.prompt)
        if request.output_size not in OUTPUT_SIZE.values:
            raise InvalidRequest(
                f"Output size is {SAME_AS_INPUT!r} (the input's size) or {AS_MODEL_MADE!r} "
                f"(as the model made it), not {request.output_size!r}.", "output_size")

    def prepare(self, request: EditRequest, settings: Settings) -> Prepared:
        notes: list[str] = []
        same = request.output_size == SAME_AS_INPUT
        source = load_input(request.image, settings, notes, full_result=same)
        size = source.full_size if same else None
        if size is not None and size != source.work.size:
            notes.append(
                f"The model made {source.work.width}×{source.work.height}; the result was "
                f"resampled to {size[0]}×{size[1]}, the input's size.")
        sampling = edit_sampling(request, settings)
        return Prepared(
            mode=NAME,
            seed=sampling.seed,
            uploads={"image": source.png()},
            values=diffusion_values(sampling, settings, request.prompt, request.negative_prompt),
            optional_roles=DIFFUSION_OPTIONAL,
            diffusion_model=sampling.unet,
            work_size=source.work.size,
            state=EditState(size),
            notes=tuple(notes),
        )

    def assemble(self, prepared: Prepared, outputs: Outputs) -> Assembled:
        size = prepared.state_as(EditState).size
        images = list(outputs.get("output", []))
        if size is None:
            return Assembled(images)
        return Assembled([image if image.size == size
                          else image.resize(size, Image.Resampling.LANCZOS) for image in images])


def from_api(call: ApiInput) -> EditRequest:
    size = call.fields.get("output_size", SAME_AS_INPUT)
    return EditRequest(image=call.images[0], prompt=call.prompt,
                       output_size=size if isinstance(size, str) else str(size))


def warmup(inputs: WarmupInputs) -> EditRequest:
    return EditRequest(image=inputs.image, prompt=inputs.instruction, seed=0, steps=1,
                       output_size=AS_MODEL_MADE)


SPEC = ModeSpec(
    name=NAME,
    title="Edit",
    request_type=EditRequest,
    operation=EditOperation(),
    roles=DIFFUSION_ROLES | {"image"},
    family=EDIT_MODEL,
    peak_vram_gb=30.0,
    inputs=(
        ModeInput("image", InputKind.IMAGE, "Image to edit"),
        ModeInput("prompt", InputKind.PROMPT, "Instruction"),
        OUTPUT_SIZE,
    ),
    warmup=warmup,
    order=20,
    api=ApiSpec(models=("qwen-image-edit",), route=ApiRoute.EDITS, build=from_api),
    send_to=SendTo("Edit", 1),
)

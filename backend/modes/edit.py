"""Edit: an instruction edit of one image with Qwen-Image-Edit (template `edit.json`).

The whole picture may change, so the result is the model's output at the working size
(~1 MP); it is not stretched back to a large input's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

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
    Operation,
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
from backend.requests import ImageInput, RequestBase
from backend.settings import Settings

NAME = "edit"


@dataclass(frozen=True)
class EditRequest(RequestBase):
    mode: ClassVar[str] = NAME
    image: ImageInput
    prompt: str


class EditOperation(Operation[EditRequest]):
    def validate(self, request: EditRequest, settings: Settings) -> None:
        check_common(request)
        check_image_present(request.image)
        check_prompt(request.prompt)

    def prepare(self, request: EditRequest, settings: Settings) -> Prepared:
        notes: list[str] = []
        source = load_input(request.image, settings, notes)
        sampling = edit_sampling(request, settings)
        return Prepared(
            mode=NAME,
            seed=sampling.seed,
            uploads={"image": source.png()},
            values=diffusion_values(sampling, settings, request.prompt, request.negative_prompt),
            optional_roles=DIFFUSION_OPTIONAL,
            diffusion_model=sampling.unet,
            work_size=source.work.size,
            notes=tuple(notes),
        )


def from_api(call: ApiInput) -> EditRequest:
    return EditRequest(image=call.images[0], prompt=call.prompt)


def warmup(inputs: WarmupInputs) -> EditRequest:
    return EditRequest(image=inputs.image, prompt=inputs.instruction, seed=0, steps=1)


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
    ),
    warmup=warmup,
    order=20,
    api=ApiSpec(models=("qwen-image-edit",), route=ApiRoute.EDITS, build=from_api),
    send_to=SendTo("Edit", 1),
)

"""Instruction edit of one image with Qwen-Image-Edit (template `edit.json`).

The whole picture may change, so the result is the model's output at the working size
(~1 MP); it is not stretched back to a large input's size.
"""

from __future__ import annotations

from dataclasses import dataclass

from backend.settings import Settings

from .base import (
    DIFFUSION_OPTIONAL,
    Finished,
    ImageInput,
    Outputs,
    Prepared,
    RequestBase,
    check_common,
    check_image_present,
    check_prompt,
    diffusion_values,
    edit_sampling,
    model_output,
)
from .inputs import load_input


@dataclass(frozen=True)
class EditRequest(RequestBase):
    mode = "edit"
    image: ImageInput
    prompt: str


class EditOperation:
    mode = "edit"

    def validate(self, request: EditRequest, settings: Settings) -> None:
        check_common(request)
        check_image_present(request.image)
        check_prompt(request.prompt)

    def prepare(self, request: EditRequest, settings: Settings) -> Prepared:
        notes: list[str] = []
        source = load_input(request.image, settings, notes)
        sampling = edit_sampling(request, settings)
        return Prepared(
            mode=self.mode,
            seed=sampling.seed,
            uploads={"image": source.png()},
            values=diffusion_values(sampling, settings, request.prompt, request.negative_prompt),
            optional_roles=DIFFUSION_OPTIONAL,
            diffusion_model=sampling.unet,
            work_size=source.work.size,
            notes=tuple(notes),
        )

    def finish(self, prepared: Prepared, outputs: Outputs) -> Finished:
        return model_output(outputs)

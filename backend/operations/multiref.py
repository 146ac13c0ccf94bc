"""Edit guided by one to three reference images (template `multiref.json`, roles
image1..image3; the binder prunes the slots left empty, never filling them with placeholders)."""

from __future__ import annotations

from dataclasses import dataclass

from backend.settings import Settings

from .base import (
    DIFFUSION_OPTIONAL,
    Finished,
    ImageInput,
    InvalidRequest,
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

MAX_REFERENCES = 3


@dataclass(frozen=True)
class MultiRefRequest(RequestBase):
    mode = "multiref"
    images: tuple[ImageInput, ...]
    prompt: str


class MultiRefOperation:
    mode = "multiref"

    def validate(self, request: MultiRefRequest, settings: Settings) -> None:
        check_common(request)
        images = request.images
        if not isinstance(images, tuple | list) or not 1 <= len(images) <= MAX_REFERENCES:
            count = len(images) if isinstance(images, tuple | list) else 0
            raise InvalidRequest(
                f"Give 1 to {MAX_REFERENCES} reference images (got {count}).", "images"
            )
        for index, image in enumerate(images, start=1):
            check_image_present(image, f"image{index}")
        check_prompt(request.prompt)

    def prepare(self, request: MultiRefRequest, settings: Settings) -> Prepared:
        notes: list[str] = []
        uploads: dict[str, bytes] = {}
        first_size: tuple[int, int] | None = None
        for index, image in enumerate(request.images, start=1):
            source = load_input(
                image, settings, notes, field=f"image{index}", label=f"Reference {index}"
            )
            uploads[f"image{index}"] = source.png()
            first_size = first_size or source.work.size
        sampling = edit_sampling(request, settings)
        return Prepared(
            mode=self.mode,
            seed=sampling.seed,
            uploads=uploads,
            values=diffusion_values(sampling, settings, request.prompt, request.negative_prompt),
            optional_roles=DIFFUSION_OPTIONAL,
            diffusion_model=sampling.unet,
            work_size=first_size,
            notes=tuple(notes),
        )

    def finish(self, prepared: Prepared, outputs: Outputs) -> Finished:
        return model_output(outputs)

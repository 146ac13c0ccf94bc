"""Multi-ref: an edit guided by one to three reference images (template `multiref.json`,
roles image1..image3; the binder prunes the slots left empty, never filling them with
placeholders).

The template's canvas is image1's. `main` (1-based, among the images sent) names the
reference that sets it: that one goes first and the others keep their order after it, so
the instruction's "picture 1" is the main one (a note says how the others are numbered)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

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
from backend.requests import ImageInput, InvalidRequest, RequestBase
from backend.settings import Settings

NAME = "multiref"


@dataclass(frozen=True)
class MultiRefRequest(RequestBase):
    mode: ClassVar[str] = NAME
    images: tuple[ImageInput, ...]
    prompt: str
    main: int = 1

    def ordered(self) -> tuple[tuple[int, ImageInput], ...]:
        """(number as sent, image), the main reference first."""
        numbered = tuple(enumerate(self.images, start=1))
        return tuple(sorted(numbered, key=lambda pair: pair[0] != self.main))


class MultiRefOperation(Operation[MultiRefRequest]):
    def validate(self, request: MultiRefRequest, settings: Settings) -> None:
        check_common(request)
        images = request.images
        low, high = limits.REFERENCES.low, limits.REFERENCES.high
        if not isinstance(images, tuple | list) or not low <= len(images) <= high:
            count = len(images) if isinstance(images, tuple | list) else 0
            raise InvalidRequest(
                f"Give {low} to {high} reference images (got {count}).", "images"
            )
        for index, image in enumerate(images, start=1):
            check_image_present(image, f"image{index}")
        if not isinstance(request.main, int) or not 1 <= request.main <= len(images):
            raise InvalidRequest(
                f"The main reference is one of the {len(images)} sent (1 to {len(images)}), "
                f"not {request.main!r}.", "main")
        check_prompt(request.prompt)

    def prepare(self, request: MultiRefRequest, settings: Settings) -> Prepared:
        notes: list[str] = []
        uploads: dict[str, bytes] = {}
        first_size: tuple[int, int] | None = None
        ordered = request.ordered()
        for index, (sent, image) in enumerate(ordered, start=1):
            source = load_input(
                image, settings, notes, field=f"image{sent}", label=f"Reference {sent}"
            )
            uploads[f"image{index}"] = source.png()
            first_size = first_size or source.work.size
        if request.main != 1:
            others = ", ".join(f"reference {sent} is picture {index}"
                               for index, (sent, _) in enumerate(ordered, start=1) if index > 1)
            notes.append(f"Reference {request.main} (the main one) set the canvas and is "
                         f"picture 1 in the instruction{'; ' + others if others else ''}.")
        sampling = edit_sampling(request, settings)
        return Prepared(
            mode=NAME,
            seed=sampling.seed,
            uploads=uploads,
            values=diffusion_values(sampling, settings, request.prompt, request.negative_prompt),
            optional_roles=DIFFUSION_OPTIONAL,
            diffusion_model=sampling.unet,
            work_size=first_size,
            notes=tuple(notes),
        )


def from_api(call: ApiInput) -> MultiRefRequest:
    main = optional_int(call.fields.get("main"), "main")
    return MultiRefRequest(images=call.images, prompt=call.prompt, main=main or 1)


def warmup(inputs: WarmupInputs) -> MultiRefRequest:
    return MultiRefRequest(images=(inputs.image,), prompt=inputs.instruction, seed=0, steps=1)


SPEC = ModeSpec(
    name=NAME,
    title="Multi-ref",
    request_type=MultiRefRequest,
    operation=MultiRefOperation(),
    roles=DIFFUSION_ROLES | {"image1"},
    family=EDIT_MODEL,
    peak_vram_gb=32.0,
    inputs=(
        ModeInput("images", InputKind.IMAGES, "References"),
        ModeInput("prompt", InputKind.PROMPT, "Instruction"),
        ModeInput("main", InputKind.CHOICE, "Main picture (sets the canvas)",
                  choices=tuple((f"Reference {i}", str(i))
                                for i in range(1, limits.REFERENCES.high + 1))),
    ),
    warmup=warmup,
    order=30,
    api=ApiSpec(
        models=("qwen-image-multiref",), route=ApiRoute.EDITS, build=from_api,
        shares_default=True,
    ),
    send_to=SendTo("Multi-ref", 6),
)

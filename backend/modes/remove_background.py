"""Remove background: a cut-out with BiRefNet (template `remove_background.json`, class
BiRefNetRMBG).

BiRefNet gets an RGB picture at the working size (it resizes internally anyway); the result
is the input's own full-resolution pixels with the model's alpha scaled up to match, so the
foreground keeps every pixel of detail. An input that already had transparency keeps it: the
two alphas are multiplied. The job keeps the input as sent; `assemble` decodes the full size
(capped at `max_result_pixels`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

from PIL import Image, ImageChops

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
    resolve_seed,
)
from backend.operations.families import BACKGROUND_REMOVAL_MODEL
from backend.operations.inputs import InputImage, load_input
from backend.requests import ImageInput, RequestBase
from backend.settings import Settings

log = logging.getLogger(__name__)

NAME = "remove_background"


@dataclass(frozen=True)
class RemoveBackgroundRequest(RequestBase):
    mode: ClassVar[str] = NAME
    image: ImageInput


class RemoveBackgroundOperation(Operation[RemoveBackgroundRequest]):
    assembles_full_size = True

    def validate(self, request: RemoveBackgroundRequest, settings: Settings) -> None:
        check_common(request)
        check_image_present(request.image)

    def prepare(self, request: RemoveBackgroundRequest, settings: Settings) -> Prepared:
        notes: list[str] = []
        source = load_input(request.image, settings, notes, upscale_small=False,
                            full_result=True)
        return Prepared(
            mode=NAME,
            seed=resolve_seed(request.seed),
            uploads={"image": source.png()},
            values={"rmbg": {"model": settings.models.birefnet}},
            work_size=source.work.size,
            state=source,
            notes=tuple(notes),
        )

    def assemble(self, prepared: Prepared, outputs: Outputs) -> Assembled:
        source = prepared.state_as(InputImage)
        results = []
        for output in outputs.get("output", []):
            original = source.full(keep_alpha=True)
            if "A" in output.getbands():
                alpha = output.getchannel("A")
            else:
                # A template saving the matte instead of a cut-out: its brightness is the alpha.
                log.warning("background removal output has no alpha; using its luminance")
                alpha = output.convert("L")
            if alpha.size != original.size:
                alpha = alpha.resize(original.size, Image.Resampling.BILINEAR)
            if original.mode == "RGBA":
                alpha = ImageChops.multiply(alpha, original.getchannel("A"))
            original.putalpha(alpha)   # in place: `full()` gave this job its own copy
            results.append(original)
        return Assembled(results)


def from_api(call: ApiInput) -> RemoveBackgroundRequest:
    return RemoveBackgroundRequest(image=call.images[0])


def warmup(inputs: WarmupInputs) -> RemoveBackgroundRequest:
    return RemoveBackgroundRequest(image=inputs.image, seed=0)


SPEC = ModeSpec(
    name=NAME,
    title="Remove background",
    request_type=RemoveBackgroundRequest,
    operation=RemoveBackgroundOperation(),
    roles=frozenset({"image", "rmbg", "output"}),
    family=BACKGROUND_REMOVAL_MODEL,
    peak_vram_gb=3.0,
    inputs=(ModeInput("image", InputKind.IMAGE, "Picture"),),
    warmup=warmup,
    order=40,
    api=ApiSpec(models=("qwen-image-remove-background",), route=ApiRoute.EDITS, build=from_api),
    send_to=SendTo("Remove bg", 5),
)

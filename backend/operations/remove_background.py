"""Background removal with BiRefNet (template `remove_background.json`, class BiRefNetRMBG).

BiRefNet gets an RGB picture at the working size (it resizes internally anyway); the result
is the input's own full-resolution pixels with the model's alpha scaled up to match, so the
foreground keeps every pixel of detail. An input that already had transparency keeps it: the
two alphas are multiplied.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from PIL import Image, ImageChops

from backend.settings import Settings

from .base import (
    ImageInput,
    Outputs,
    Prepared,
    RequestBase,
    check_common,
    check_image_present,
    resolve_seed,
)
from .images import decode_image, encode_png, flatten
from .inputs import to_working

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoveBackgroundRequest(RequestBase):
    mode = "remove_background"
    image: ImageInput


class RemoveBackgroundOperation:
    mode = "remove_background"

    def validate(self, request: RemoveBackgroundRequest, settings: Settings) -> None:
        check_common(request)
        check_image_present(request.image)

    def prepare(self, request: RemoveBackgroundRequest, settings: Settings) -> Prepared:
        notes: list[str] = []
        original = decode_image(request.image, max_pixels=settings.max_input_pixels, notes=notes)
        work = to_working(flatten(original), settings, notes, "The image", upscale_small=False)
        return Prepared(
            mode=self.mode,
            seed=resolve_seed(request.seed),
            uploads={"image": encode_png(work)},
            values={"rmbg": {"model": settings.models.birefnet}},
            work_size=work.size,
            state=original,
            notes=tuple(notes),
        )

    def finish(self, prepared: Prepared, outputs: Outputs):
        original: Image.Image = prepared.state
        results = []
        for output in outputs.get("output", []):
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
            result = original.convert("RGB")
            result.putalpha(alpha)
            results.append(result)
        return results, {}

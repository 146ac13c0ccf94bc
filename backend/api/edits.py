"""`POST /v1/images/edits`: the multipart form → one request per image to produce.

The model picks the mode; "qwen-image-edit" picks edit, multi-ref (several images) or inpaint
(a mask) from what was sent. Images are decoded here, once, with the studio's safe decoder, so
the mask can be checked against the image before anything reaches ComfyUI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from backend.api.body_limits import describe_size
from backend.api.errors import ApiError
from backend.api.schemas import (
    DEFAULT_EDIT_MODEL,
    EDIT_MODELS,
    ModelChoice,
    optional_int,
    parse_common,
    pick_model,
    seed_for,
    text,
)
from backend.operations import (
    EditRequest,
    InpaintRequest,
    InvalidRequest,
    MultiRefRequest,
    OutpaintRequest,
    RegionEditRequest,
    RemoveBackgroundRequest,
)
from backend.operations.images import decode_image
from backend.settings import Settings

MAX_IMAGES = 3
IMAGE_FIELDS = ("image", "image[]")
PAD_FIELDS = ("pad_left", "pad_top", "pad_right", "pad_bottom")


@dataclass(frozen=True)
class EditForm:
    """The form's values after reading (files as bytes, everything else as strings)."""

    fields: dict[str, Any]
    images: tuple[bytes, ...]
    mask: bytes | None


async def read_form(request: Any, settings: Settings) -> EditForm:
    """Read the multipart body; 413 for files over the upload limit, 400 for a bad form."""
    try:
        form = await request.form(max_files=MAX_IMAGES + 2, max_fields=64)
    except ApiError:
        raise
    except Exception as exc:  # malformed multipart, too many parts, not a form at all
        raise ApiError(
            400, f"Send the edit as multipart/form-data ({type(exc).__name__}).", param="image"
        ) from None
    images: list[bytes] = []
    mask: bytes | None = None
    fields: dict[str, Any] = {}
    try:
        for key, value in form.multi_items():
            if hasattr(value, "read"):
                data = await value.read()
                if len(data) > settings.max_upload_bytes:
                    raise ApiError(
                        413,
                        f"The file '{getattr(value, 'filename', key)}' is "
                        f"{describe_size(len(data))}; the limit is "
                        f"{describe_size(settings.max_upload_bytes)}.",
                        param=key,
                        code="file_too_large",
                    )
                if key in IMAGE_FIELDS:
                    images.append(data)
                elif key in ("mask", "mask[]"):
                    mask = data
                else:
                    raise ApiError(400, f"Unexpected file field '{key}'.", param=key)
            else:
                fields[key] = value
    finally:
        await form.close()
    return EditForm(fields, tuple(images), mask)


def openai_mask(data: bytes, size: tuple[int, int], settings: Settings) -> Image.Image:
    """OpenAI semantics → the studio's L mask (255 = change).

    With an alpha channel, fully transparent pixels are the ones to edit (OpenAI's rule).
    Without one, the mask is read as a black/white picture where white = change.
    """
    decoded = _decode(data, settings, "mask", prefix="Mask: ")
    if decoded.size != size:
        raise ApiError(
            400,
            f"The mask is {decoded.width}x{decoded.height} but the image is "
            f"{size[0]}x{size[1]}; they must be the same size.",
            param="mask",
        )
    if decoded.mode == "RGBA":
        alpha = np.asarray(decoded.getchannel("A"))
        change = alpha == 0
    else:
        change = np.asarray(decoded.convert("L")) >= 128
    if not change.any():
        raise ApiError(
            400,
            "The mask marks nothing to edit: make the area to change fully transparent.",
            param="mask",
        )
    return Image.fromarray(change.astype(np.uint8) * 255, "L")


def _decode(data: bytes, settings: Settings, param: str, prefix: str = "") -> Image.Image:
    try:
        return decode_image(data, max_pixels=settings.max_input_pixels, field=param)
    except InvalidRequest as exc:
        raise ApiError(400, prefix + exc.message, param=param) from None


def build_edit_requests(
    form: EditForm, settings: Settings, variants: Callable[[str], list[str]]
) -> tuple[ModelChoice, list[Any]]:
    """Pick the mode and build n requests (seed, seed+1, … when a seed was given)."""
    f = form.fields
    choice = pick_model(f.get("model"), EDIT_MODELS, DEFAULT_EDIT_MODEL, variants)
    common = parse_common(f)
    if not form.images:
        raise ApiError(400, "Attach an image ('image' file field).", param="image")
    if len(form.images) > MAX_IMAGES:
        raise ApiError(
            400, f"At most {MAX_IMAGES} images (got {len(form.images)}).", param="image"
        )
    mode = choice.mode
    if choice.model == DEFAULT_EDIT_MODEL:
        mode = "inpaint" if form.mask is not None else "multiref" if len(form.images) > 1 else "edit"
    if mode != "multiref" and len(form.images) > 1:
        raise ApiError(
            400,
            f"{choice.model} takes one image; use qwen-image-multiref (or qwen-image-edit "
            "without a mask) for up to three.",
            param="image",
        )
    if form.mask is not None and mode != "inpaint":
        raise ApiError(400, f"{choice.model} does not take a mask.", param="mask")
    # Decoded here for early 400s and the mask's size check; the requests get the bytes, so
    # the operation decodes them itself and its notes (first GIF frame…) reach the answer.
    images = [_decode(data, settings, "image") for data in form.images]
    prompt = text(f.get("prompt"), "prompt", required=mode in _PROMPT_REQUIRED)
    make = _builder(mode, f, images, form, settings)
    requests = [
        make(
            prompt,
            seed=seed_for(common, i),
            steps=common.steps,
            cfg=common.cfg,
            variant=choice.variant,
            negative_prompt=common.negative_prompt,
        )
        for i in range(common.n)
    ]
    return ModelChoice(choice.model, mode, choice.variant), requests


_PROMPT_REQUIRED = frozenset({"edit", "multiref", "inpaint", "region_edit"})


def _builder(
    mode: str, f: dict[str, Any], images: list[Image.Image], form: EditForm, settings: Settings
) -> Callable[..., Any]:
    image = form.images[0]
    if mode == "edit":
        return lambda prompt, **kw: EditRequest(image=image, prompt=prompt, **kw)
    if mode == "multiref":
        return lambda prompt, **kw: MultiRefRequest(images=form.images, prompt=prompt, **kw)
    if mode == "inpaint":
        if form.mask is None:
            raise ApiError(400, "Inpainting needs a 'mask' file.", param="mask")
        mask = openai_mask(form.mask, images[0].size, settings)
        return lambda prompt, **kw: InpaintRequest(image=image, mask=mask, prompt=prompt, **kw)
    if mode == "outpaint":
        pads = {
            name.removeprefix("pad_"): optional_int(f.get(name), name) or 0 for name in PAD_FIELDS
        }
        for side, value in pads.items():
            # Checked here so the error names the form field (pad_right), not the request's.
            if not 0 <= value <= settings.max_outpaint_pad:
                raise ApiError(
                    400,
                    f"'pad_{side}' must be between 0 and {settings.max_outpaint_pad} pixels "
                    f"(got {value}).",
                    param=f"pad_{side}",
                )
        if not any(pads.values()):
            raise ApiError(
                400,
                "Outpainting needs at least one of pad_left, pad_top, pad_right, pad_bottom.",
                param="pad_left",
            )
        return lambda prompt, **kw: OutpaintRequest(image=image, prompt=prompt, **pads, **kw)
    if mode == "region_edit":
        region = text(f.get("region"), "region", required=True)
        return lambda prompt, **kw: RegionEditRequest(
            image=image, region=region, prompt=prompt, **kw
        )
    if mode == "remove_background":
        return lambda prompt, **kw: RemoveBackgroundRequest(image=image, **kw)
    raise ApiError(400, f"Unknown edit mode '{mode}'.", param="model")


"""`POST /v1/images/edits`: the multipart form → one request per image to produce.

The model picks the mode; the route's default model ("qwen-image-edit") also picks a mode
that shares it (`ApiSpec.shares_default`) when what was sent fits that mode better: a mask
picks the mode that takes one, several images the mode that takes several. Images are checked
here from their headers only (format, size, a PNG's chunks), so the mask can be checked
against the image before anything reaches ComfyUI without decoding either: a request holds
the bytes it was sent until its job's turn (issue 9). Only an OpenAI mask with transparency
is decoded here, to turn it into the studio's convention, one at a time; each mode then turns
the form into its request (`ApiSpec.build`).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from PIL import Image
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from backend import limits
from backend.api.errors import ApiError
from backend.api.schemas import (
    ApiModel,
    Common,
    ModelChoice,
    Variants,
    parse_common,
    pick_model,
    seed_for,
    text,
)
from backend.modes import ApiInput, ApiRoute, InputKind, ModeRegistry, ModeSpec
from backend.operations.images import ImageHeader, decode_image, read_header
from backend.operations.masks import threshold
from backend.requests import InvalidRequest, RequestBase
from backend.settings import Settings

IMAGE_FIELDS = ("image", "image[]")
MASK_FIELDS = ("mask", "mask[]")
# Request fields of the operations that the API calls by another name.
PARAM_NAMES = {"width": "size", "height": "size", "images": "image", "image1": "image"}
Spec = ModeSpec[RequestBase]
# An OpenAI mask with transparency is decoded at full size to convert it: one at a time, so a
# burst of requests cannot decode a dozen 40 MP masks at once.
_MASK_DECODES = threading.Lock()


@dataclass(frozen=True)
class EditForm:
    """The form's values after reading (files as bytes, everything else as strings)."""

    fields: dict[str, Any]
    images: tuple[bytes, ...]
    mask: bytes | None


def api_param(field: str | None, spec: Spec | None = None) -> str | None:
    """The API's name for a request field that an operation named in an error: the mode's
    declared `api_param` (outpaint's `right` is `pad_right`), else the shared table."""
    if field is None:
        return None
    declared = spec.input(field) if spec is not None else None
    if declared is not None and declared.api_param:
        return declared.api_param
    return PARAM_NAMES.get(field, field)


def param_names(spec: Spec | None) -> Callable[[str | None], str | None]:
    return lambda field: api_param(field, spec)


def models_of(specs: Sequence[Spec]) -> list[ApiModel]:
    return [ApiModel(model, s.name) for s in specs if s.api is not None for model in s.api.models]


MAX_FIELDS = 64
MAX_FILES = limits.REFERENCES.high + 1     # the images and a mask
FIELD_BYTES = 1024 * 1024                 # one text field (starlette's part limit)


async def read_form(request: Request, settings: Settings) -> EditForm:
    """Read the multipart body; 413 for files over the upload limit, 400 for a bad form, each
    with its own sentence."""
    try:
        form = await request.form(
            max_files=MAX_FILES, max_fields=MAX_FIELDS, max_part_size=FIELD_BYTES
        )
    except ApiError:
        raise
    except HTTPException as exc:   # starlette's multipart parser says what went wrong
        raise _form_problem(str(exc.detail)) from None
    except Exception:  # malformed multipart, not a form at all
        raise _form_problem("") from None
    images: list[bytes] = []
    mask: bytes | None = None
    fields: dict[str, Any] = {}
    try:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                if len(data) > settings.max_upload_bytes:
                    raise ApiError(
                        413,
                        f"The file '{value.filename or key}' is "
                        f"{limits.describe_bytes(len(data))}; the limit is "
                        f"{limits.describe_bytes(settings.max_upload_bytes)}.",
                        param=key,
                        code="file_too_large",
                    )
                if key in IMAGE_FIELDS:
                    images.append(data)
                elif key in MASK_FIELDS:
                    mask = data
                else:
                    raise ApiError(400, f"Unexpected file field '{key}'.", param=key)
            else:
                fields[key] = value
    finally:
        await form.close()
    return EditForm(fields, tuple(images), mask)


def _form_problem(detail: str) -> ApiError:
    """Starlette's MultiPartException message → the studio's sentence."""
    if detail.startswith("Too many files"):
        return ApiError(
            400,
            f"Too many files: an edit takes at most {limits.REFERENCES.high} images "
            "('image' or 'image[]', repeated) and one 'mask'.",
            param="image", code="too_many_files",
        )
    if detail.startswith("Too many fields"):
        return ApiError(
            400,
            f"Too many form fields (the limit is {MAX_FIELDS}): send the images, 'prompt', "
            "'model' and the mode's own fields only.",
            code="too_many_fields",
        )
    if "exceeded maximum size" in detail:
        return ApiError(
            400,
            f"A text field is over {limits.describe_bytes(FIELD_BYTES)}: a prompt or a setting is "
            "short text; send pictures as file fields.",
            code="field_too_large",
        )
    return ApiError(
        400,
        "Send the edit as multipart/form-data, with the picture in an 'image' file field.",
        param="image", code="invalid_form",
    )


def openai_mask(data: bytes, size: tuple[int, int], settings: Settings) -> bytes:
    """OpenAI semantics → the studio's mask (white = change), as PNG bytes to keep while the
    job waits.

    With an alpha channel, fully transparent pixels are the ones to edit (OpenAI's rule): the
    mask is decoded and converted (a 1-bit PNG: a few KB). Without one, it is read as a
    black/white picture where white = change, which is the studio's own rule: the bytes are
    kept as sent, once the check that it marks something passes.
    """
    header = _header(data, settings, "mask", prefix="Mask: ")
    if header.size != size:
        raise ApiError(
            400,
            f"The mask is {header.width}x{header.height} but the image is "
            f"{size[0]}x{size[1]}; they must be the same size.",
            param="mask",
        )
    with _MASK_DECODES:
        decoded = _decode(data, settings, "mask", prefix="Mask: ")
        if "A" in decoded.getbands():
            change = decoded.getchannel("A").point(lambda v: 255 if v == 0 else 0)
            converted = True
        else:
            change = threshold(decoded.convert("L"))
            converted = False
        del decoded
        if change.getbbox() is None:
            raise ApiError(
                400,
                "The mask marks nothing to edit: make the area to change fully transparent.",
                param="mask",
            )
        if not converted:
            return data
        buffer = io.BytesIO()
        change.convert("1", dither=Image.Dither.NONE).save(buffer, format="PNG")
        return buffer.getvalue()


def _header(data: bytes, settings: Settings, param: str, prefix: str = "") -> ImageHeader:
    try:
        return read_header(data, max_pixels=settings.max_input_pixels, field=param)
    except InvalidRequest as exc:
        raise ApiError(400, prefix + exc.message, param=param) from None


def _decode(data: bytes, settings: Settings, param: str, prefix: str = "") -> Image.Image:
    try:
        return decode_image(data, max_pixels=settings.max_input_pixels, field=param, gray=True)
    except InvalidRequest as exc:
        raise ApiError(400, prefix + exc.message, param=param) from None


def _shared_pick(specs: Sequence[Spec], owner: Spec, form: EditForm) -> Spec:
    """The mode the route's default model means for what was sent: a mask picks the mode
    that takes one, several images the mode that takes several, anything else the owner."""
    sharing = [s for s in specs if s.api is not None and s.api.shares_default]
    if form.mask is not None:
        return next((s for s in sharing if s.has(InputKind.MASK)), owner)
    if len(form.images) > 1:
        return next((s for s in sharing if s.max_images > 1), owner)
    return owner


def build_edit_requests(
    form: EditForm, settings: Settings, registry: ModeRegistry, variants: Variants
) -> tuple[ModelChoice, list[RequestBase]]:
    """Pick the mode and build n requests (seed, seed+1, … when a seed was given)."""
    f = form.fields
    specs = registry.on_route(ApiRoute.EDITS)
    choice = pick_model(f.get("model"), models_of(specs), variants)
    common = parse_common(f)
    if not form.images:
        raise ApiError(400, "Attach an image ('image' file field).", param="image")
    most = limits.REFERENCES.high
    if len(form.images) > most:
        raise ApiError(400, f"At most {most} images (got {len(form.images)}).", param="image")
    spec = registry.get(choice.mode)
    models = models_of(specs)
    default = models[0].id
    if choice.model == default:
        spec = _shared_pick(specs, spec, form)
    if len(form.images) > max(spec.max_images, 1):
        several = next((m.id for m in models if registry.get(m.mode).max_images > 1), None)
        also = f"; use {several} (or {default} without a mask) for up to {most}" if several else ""
        raise ApiError(400, f"{choice.model} takes one image{also}.", param="image")
    if form.mask is not None and not spec.has(InputKind.MASK):
        raise ApiError(400, f"{choice.model} does not take a mask.", param="mask")
    # Headers only, for early 400s and the mask's size check; the requests get the bytes, so
    # the operation decodes them at its turn and its notes (first GIF frame…) reach the answer.
    headers = [_header(data, settings, "image") for data in form.images]
    prompt = text(f.get("prompt"), "prompt", required=spec.prompt_required)
    mask = openai_mask(form.mask, headers[0].size, settings) if form.mask is not None else None
    base = build_request(spec, ApiInput(f, prompt, form.images, mask, settings))
    return ModelChoice(choice.model, spec.name, choice.variant), per_image(base, common, choice)


def per_image(base: RequestBase, common: Common, choice: ModelChoice) -> list[RequestBase]:
    """n copies of a request with the fields both routes share (seed, seed+1, …)."""
    return [
        replace(
            base,
            seed=seed_for(common, i),
            steps=common.steps,
            cfg=common.cfg,
            variant=choice.variant,
            negative_prompt=common.negative_prompt,
        )
        for i in range(common.n)
    ]


def build_request(spec: Spec, call: ApiInput) -> RequestBase:
    """The mode's request from what the route read; its refusals become 400s."""
    if spec.api is None:
        raise ApiError(400, f"The {spec.title} mode has no API model.", param="model")
    try:
        return spec.api.build(call)
    except InvalidRequest as exc:
        raise ApiError(400, exc.message, param=api_param(exc.field, spec)) from None

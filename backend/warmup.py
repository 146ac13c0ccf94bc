"""Pre-warm ComfyUI: one tiny request per mode, so the first real job does not pay the load.

The operations guide: "To pre-warm at startup, hit each model alias once with a tiny request."
Generation runs first at 256×256 with one step; the edit modes then reuse its picture (or a
drawn one when generation is not warmed or failed), so the edit model, the background remover
and the region models are each loaded once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw

from backend.operations import (
    EditRequest,
    GenerateRequest,
    InpaintRequest,
    MultiRefRequest,
    OutpaintRequest,
    RegionEditRequest,
    RemoveBackgroundRequest,
)
from backend.settings import MODES

log = logging.getLogger(__name__)

SIZE = 256
PROMPT = "a red ball on a wooden table"
EDIT_PROMPT = "make the ball blue"


@dataclass(frozen=True)
class WarmupResult:
    mode: str
    ok: bool
    seconds: float
    message: str


def sample_image() -> Image.Image:
    """A small picture with one clear object, for the modes that need an input."""
    image = Image.new("RGB", (SIZE, SIZE), (222, 196, 160))
    draw = ImageDraw.Draw(image)
    draw.ellipse((80, 80, 176, 176), fill=(200, 30, 30))
    return image


def centre_mask() -> Image.Image:
    mask = Image.new("L", (SIZE, SIZE), 0)
    ImageDraw.Draw(mask).rectangle((96, 96, 160, 160), fill=255)
    return mask


def tiny_request(mode: str, image: Image.Image) -> Any:
    quick = {"seed": 0, "steps": 1}
    if mode == "generate":
        return GenerateRequest(prompt=PROMPT, width=SIZE, height=SIZE, **quick)
    if mode == "edit":
        return EditRequest(image=image, prompt=EDIT_PROMPT, **quick)
    if mode == "multiref":
        return MultiRefRequest(images=(image,), prompt=EDIT_PROMPT, **quick)
    if mode == "remove_background":
        return RemoveBackgroundRequest(image=image, seed=0)
    if mode == "region_edit":
        return RegionEditRequest(image=image, region="the ball", prompt=EDIT_PROMPT, **quick)
    if mode == "inpaint":
        return InpaintRequest(image=image, mask=centre_mask(), prompt=EDIT_PROMPT, **quick)
    if mode == "outpaint":
        return OutpaintRequest(image=image, right=64, prompt="more table", **quick)
    raise ValueError(f"unknown mode {mode!r}; modes: {', '.join(MODES)}")


async def warm_up(studio: Any, modes: Iterable[str] | None = None) -> list[WarmupResult]:
    """Run one tiny job per mode (all modes by default), in order; never raises for a job."""
    chosen = list(MODES if modes is None else modes)
    for mode in chosen:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; modes: {', '.join(MODES)}")
    # Generate first so its picture can feed the others.
    chosen.sort(key=lambda m: m != "generate")
    image = sample_image()
    results = []
    for mode in chosen:
        result, output = await _run(studio, mode, image)
        if mode == "generate" and output is not None:
            image = output.convert("RGB")
        log.info("warm-up %s: %s in %.1f s (%s)", mode, "ok" if result.ok else "failed",
                 result.seconds, result.message)
        results.append(result)
    return results


async def _run(studio: Any, mode: str, image: Image.Image) -> tuple[WarmupResult, Any]:
    started = time.monotonic()
    loaded = False
    events = studio.run(tiny_request(mode, image))
    try:
        async for event in events:
            kind = type(event).__name__
            if kind == "Started":
                loaded = loaded or bool(getattr(event, "loading_models", False))
            elif kind == "Finished":
                seconds = time.monotonic() - started
                images = list(getattr(event, "images", []) or [])
                what = "loaded its models" if loaded else "already warm"
                return WarmupResult(mode, True, seconds, what), (images[0] if images else None)
            elif kind == "Failed":
                return WarmupResult(mode, False, time.monotonic() - started, event.message), None
    except Exception as exc:  # a bug or an unexpected error: report it per mode, go on
        log.exception("warm-up of %s crashed", mode)
        return WarmupResult(mode, False, time.monotonic() - started, str(exc)), None
    finally:
        await events.aclose()
    return WarmupResult(mode, False, time.monotonic() - started, "ended without a result"), None

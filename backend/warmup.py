"""Pre-warm ComfyUI: one tiny request per mode, so the first real job does not pay the load.

The operations guide: "To pre-warm at startup, hit each model alias once with a tiny request."
Each mode declares its tiny request (`ModeSpec.warmup`, e.g. 256×256 and one step). Modes that
take no picture run first, so a generated one can feed the others (a drawn one stands in when
there is none); each family's models are then loaded once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

from PIL import Image

from backend.events import Failed, Finished, Started, Surface
from backend.jobs import Admission, Studio
from backend.modes import ModeSpec, WarmupInputs
from backend.requests import InvalidRequest, RequestBase
from backend.scheduler import QueueFull

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WarmupResult:
    mode: str
    ok: bool
    seconds: float
    message: str


async def warm_up(
    studio: Studio, modes: Iterable[str] | None = None, *, surface: Surface = "ui",
    server: str | None = None,
) -> list[WarmupResult]:
    """Run one tiny job per mode (all modes by default), in order; never raises for a job.
    `server`: on that ComfyUI server only (by label; default: wherever routing sends each)."""
    registry = studio.registry
    names = list(registry.names() if modes is None else modes)
    specs = [registry.get(name) for name in names]   # KeyError names the unknown mode
    # Modes that take no picture first: their result feeds the others.
    specs.sort(key=lambda spec: spec.max_images > 0)
    inputs = WarmupInputs.sample()
    results = []
    for spec in specs:
        result, output = await _run(studio, spec, inputs, surface, server)
        if spec.max_images == 0 and output is not None:
            inputs = replace(inputs, image=output.convert("RGB"))
        log.info("warm-up %s: %s in %.1f s (%s)", spec.name, "ok" if result.ok else "failed",
                 result.seconds, result.message)
        results.append(result)
    return results


async def _run(
    studio: Studio, spec: ModeSpec[RequestBase], inputs: WarmupInputs, surface: Surface,
    server: str | None,
) -> tuple[WarmupResult, Image.Image | None]:
    started = time.monotonic()
    loaded = False
    request = spec.warmup(inputs)
    try:
        job: RequestBase | Admission = (
            request if server is None else studio.admit(request, server=server)
        )
    except (InvalidRequest, QueueFull) as exc:
        return WarmupResult(spec.name, False, time.monotonic() - started, exc.message), None
    events = studio.run(job, surface=surface)
    try:
        async for event in events:
            if isinstance(event, Started):
                loaded = loaded or event.loading_models
            elif isinstance(event, Finished):
                seconds = time.monotonic() - started
                what = "loaded its models" if loaded else "already warm"
                first = event.images[0] if event.images else None
                return WarmupResult(spec.name, True, seconds, what), first
            elif isinstance(event, Failed):
                return WarmupResult(spec.name, False, time.monotonic() - started,
                                    event.message), None
    except Exception as exc:  # a bug or an unexpected error: report it per mode, go on
        log.exception("warm-up of %s crashed", spec.name)
        return WarmupResult(spec.name, False, time.monotonic() - started, str(exc)), None
    finally:
        await events.aclose()
    return WarmupResult(spec.name, False, time.monotonic() - started,
                        "ended without a result"), None

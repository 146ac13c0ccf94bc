"""Which modes this ComfyUI server can run: each mode's default template's node classes and
model files (the ones settings name, as binding will) against /object_info and
/models/<folder>. One /object_info and one listing per folder, however many modes need it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from backend.settings import MODES, Settings
from backend.workflows import Readiness, TemplateError, check_ready, requirements

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TemplateProblem(Readiness):
    """Not ready because the mode's template itself cannot be used."""

    problem: str = ""

    @property
    def message(self) -> str:
        return self.problem


def model_names(mode: str, settings: Settings | None) -> dict[str, str]:
    """The files the studio binds for a mode's default template (settings, not the
    template's own defaults)."""
    if settings is None:
        return {}
    m = settings.models
    return {
        "unet": m.generate_unet if mode == "generate" else m.edit_unet,
        "clip": m.text_encoder,
        "vae": m.vae,
    }


async def check_modes(
    client: Any, library: Any, settings: Settings | None = None
) -> dict[str, Readiness]:
    """Readiness per mode. ComfyError from the server propagates (the caller shows offline)."""
    object_info = await client.object_info()
    listings: dict[str, list[str]] = {}
    result: dict[str, Readiness] = {}
    for mode in MODES:
        try:
            reqs = requirements(library.get(mode), model_names=model_names(mode, settings))
        except TemplateError as exc:
            result[mode] = TemplateProblem(ready=False, problem=exc.message)
            continue
        for folder in reqs.models:
            if folder not in listings:
                listings[folder] = await client.models(folder)  # [] for an unknown folder
        result[mode] = check_ready(reqs, object_info, listings)
        if not result[mode].ready:
            log.info("%s is not ready: %s", mode, result[mode].message)
    return result

"""One StudioContext per process: the pieces every surface (UI, API, CLI) shares."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from backend.comfy import ComfyClient
from backend.identity import data_dir_from_env, load_or_create_studio_id
from backend.jobs import Studio
from backend.monitor import Monitor
from backend.settings import Settings
from backend.workflows.template import TemplateLibrary

log = logging.getLogger(__name__)


@dataclass
class StudioContext:
    settings: Settings
    client: ComfyClient
    library: TemplateLibrary
    studio: Studio
    monitor: Monitor

    async def aclose(self) -> None:
        await self.monitor.aclose()
        await self.client.aclose()


def build_context(settings: Settings) -> StudioContext:
    """Nothing here touches the network: the studio starts fine while ComfyUI is down."""
    studio_id = load_or_create_studio_id(data_dir_from_env(), workflows_dir=settings.workflows_dir)
    client = ComfyClient(settings.comfy_url, studio_id=studio_id)  # marks prompts as ours
    library = TemplateLibrary(settings.workflows_dir)
    studio = Studio(client, settings, library)
    monitor = Monitor(client, settings, library, studio)
    log.info("studio context ready (ComfyUI at %s)", settings.comfy_url)
    return StudioContext(settings, client, library, studio, monitor)

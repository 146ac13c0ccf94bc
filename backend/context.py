"""One StudioContext per process: the pieces every surface (UI, API, CLI) shares, composed
here explicitly — one ComfyClient per configured server (`clients`, by label; `client` is the
default's); the metrics observe the studio's jobs (all of them, whichever surface started
them); the monitor polls every server for everyone; `start()` and `aclose()` bracket the
app."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from backend.api.aliases import ModelAliases
from backend.apps import AppShelf
from backend.chat import LlmRouter, RouterConfig
from backend.comfy import ComfyClient
from backend.comfy.orphans import OrphanReport, start_orphan_sweep
from backend.desk import Desk
from backend.identity import load_or_create_studio_id
from backend.jobs import Studio
from backend.library import Library
from backend.metrics import StudioMetrics
from backend.modes import REGISTRY, ModeRegistry
from backend.monitor import Monitor
from backend.settings import Settings
from backend.workflows import TemplateLibrary

log = logging.getLogger(__name__)


@dataclass
class StudioContext:
    settings: Settings
    client: ComfyClient         # the default (first) server's
    templates: TemplateLibrary
    registry: ModeRegistry
    studio: Studio
    monitor: Monitor
    metrics: StudioMetrics
    library: Library            # every result, kept (backend/library)
    desk: Desk                  # where every surface hands in its jobs
    aliases: ModelAliases = field(default_factory=ModelAliases)   # STUDIO_MODEL_ALIASES
    chat_router: LlmRouter | None = None   # STUDIO_ROUTER_URL: the chat's optional LLM router
    started_at: int = field(default_factory=lambda: int(time.time()))
    clients: dict[str, ComfyClient] = field(default_factory=dict)   # every server's, by label
    apps: AppShelf | None = None   # workflow apps (STUDIO_APPS_DIR), registered as modes
    _sweeps: list[asyncio.Task[OrphanReport]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.clients:
            self.clients = {self.settings.servers[0].label: self.client}

    async def start(self) -> None:
        """On the server's loop, as it starts: the library (its start-up check), the shared
        poller (the UI's timer handlers may run in worker threads, where snapshot() cannot
        start it), and the removal of prompts a killed studio process left in ComfyUI's
        queue."""
        report = await self.library.open()
        for line in report.lines():
            log.info("%s", line)
        if self.apps is not None:
            # Before the first poll, so the apps are in its readiness; then on a timer.
            await self.apps.sync()
            self.apps.start(self.settings.apps_poll_s, self.monitor.recheck_soon)
        self.monitor.start()
        for client in self.clients.values():
            if client.studio_id is not None:
                self._sweeps.append(start_orphan_sweep(client, client.studio_id))

    async def aclose(self) -> None:
        for sweep in self._sweeps:
            sweep.cancel()
        await self.desk.aclose()
        if self.apps is not None:
            await self.apps.aclose()
        if self.chat_router is not None:
            await self.chat_router.aclose()
        await self.monitor.aclose()
        await self.library.close()
        for client in self.clients.values():
            await client.aclose()


def build_context(
    settings: Settings, registry: ModeRegistry = REGISTRY, *, env: Mapping[str, str] | None = None
) -> StudioContext:
    """Nothing here touches the network: the studio starts fine while ComfyUI is down.
    `env` (default: the process's) gives the API's model aliases and the chat's LLM router;
    a malformed one raises ValueError naming it."""
    env = os.environ if env is None else env
    if settings.apps_dir is not None and registry is REGISTRY:
        # The studio's workflow apps are its own modes: never the process's built-in ones.
        registry = registry.copy()
    aliases = ModelAliases.from_env(env)
    router_config = RouterConfig.from_env(env)
    data_dir = settings.library.data_dir        # the studio id lives beside the library
    studio_id = load_or_create_studio_id(data_dir, workflows_dir=settings.workflows_dir)
    # One client per server; each marks its prompts as ours (orphans.py).
    clients = {
        server.label: ComfyClient(server.url, studio_id=studio_id) for server in settings.servers
    }
    client = next(iter(clients.values()))
    library = TemplateLibrary(settings.workflows_dir, settings.apps_dir)
    metrics = StudioMetrics()
    studio = Studio(dict(clients), settings, library, registry, observers=[metrics])
    monitor = Monitor(dict(clients), settings, library, registry, studio)
    if settings.auth and not settings.api_key:
        log.warning("the UI has a login but STUDIO_API_KEY is not set: /v1/* is open to anyone")
    log.info("studio context ready (ComfyUI %s; routing %s; modes: %s)",
             ", ".join(f"{s.label} at {s.url}" for s in settings.servers), settings.routing,
             ", ".join(registry.names()))
    results = Library(settings.library)
    desk = Desk(studio, results)
    chat_router = LlmRouter(router_config) if router_config is not None else None
    if router_config is not None:
        log.info("chat: LLM router %s at %s", router_config.model, router_config.url)
    apps = AppShelf(settings.apps_dir, registry, client) if settings.apps_dir else None
    return StudioContext(
        settings, client, library, registry, studio, monitor, metrics, results, desk,
        aliases=aliases, chat_router=chat_router, clients=clients, apps=apps,
    )

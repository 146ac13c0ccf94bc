"""The fake's HTTP routes (each also under `/api/`), ported from ComfyUI 0.3.64's server.

One `Runtime` is one life of the server process: queue, history, cache, sockets and VRAM
are new on every (re)start; settings, counters, faults and files are kept by `FakeComfy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from backend.comfy.validation import validate_prompt

from . import files
from .executor import SENSITIVE_EXTRA_DATA_KEYS, Executor, QueueItem
from .faults import Faults
from .objectinfo import build_object_info, recorded_misc
from .state import GGUF_BASE_FOLDERS, GGUF_FOLDERS, Config, Counters, History, Memory
from .ws import SERVER_FEATURES, Hub

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SYSTEM = {
    "os": "posix",
    "ram_total": 137438953472,
    "ram_free": 120259084288,
    "comfyui_version": "0.3.64",
    "required_frontend_version": "1.27.10",
    "installed_templates_version": "0.1.95",
    "required_templates_version": "0.1.95",
    "python_version": "3.11.7 (main, May  9 2026, 07:35:25) [GCC 12.2.0]",
    "pytorch_version": "2.8.0+cu128",
    "embedded_python": False,
}
CPU_PYTORCH_VERSION = "2.13.0+cpu"     # the recorded `--cpu` server's torch


class Runtime:
    def __init__(self, config: Config, counters: Counters, faults: Faults) -> None:
        self.config = config
        self.counters = counters
        self.faults = faults
        self.hub = Hub(faults, counters)
        self.memory = Memory(config, counters)
        self.history = History()
        self.executor = Executor(config, counters, faults, self.hub, self.memory, self.history,
                                 self.object_info)
        self.hub.queue_remaining = self.executor.queue.remaining
        self._worker: asyncio.Task[None] | None = None

    def object_info(self) -> dict[str, Any]:
        return build_object_info(self.config.models, self.config.input_images(),
                                 self.config.hidden_classes, gguf=self.config.gguf)

    async def start(self) -> None:
        self.hub.start()
        self._worker = asyncio.get_running_loop().create_task(self.executor.run_forever())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        await self.hub.close()

    # --- the app -------------------------------------------------------------------------

    def build_app(self, extra_routes: Callable[[web.Application], None] | None = None
                  ) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=200 * 1024**2)
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/ws", self.hub.handle),
            ("GET", "/", self.index),
            ("GET", "/embeddings", self.embeddings),
            ("GET", "/models", self.models),
            ("GET", "/models/{folder}", self.models_in),
            ("GET", "/extensions", self.static_body("extensions")),
            ("POST", "/upload/image", self.upload_image),
            ("POST", "/upload/mask", self.upload_mask),
            ("GET", "/view", self.view),
            ("GET", "/system_stats", self.system_stats),
            ("GET", "/features", self.features),
            ("GET", "/prompt", self.get_prompt),
            ("POST", "/prompt", self.post_prompt),
            ("GET", "/object_info", self.get_object_info),
            ("GET", "/object_info/{node_class}", self.get_object_info_class),
            ("GET", "/history", self.get_history),
            ("GET", "/history/{prompt_id}", self.get_history_one),
            ("POST", "/history", self.post_history),
            ("GET", "/queue", self.get_queue),
            ("POST", "/queue", self.post_queue),
            ("POST", "/interrupt", self.interrupt),
            ("POST", "/free", self.free),
            ("GET", "/settings", self.static_body("settings")),
            ("POST", "/settings", self.empty_ok),
            ("GET", "/users", self.static_body("users")),
            ("GET", "/i18n", self.static_body("i18n")),
            ("GET", "/workflow_templates", self.static_body("workflow_templates")),
            ("GET", "/experiment/models", self.experiment_models),
            ("GET", "/internal/folder_paths", self.folder_paths),
            ("GET", "/internal/logs/raw", self.static_body("internal/logs/raw")),
        ]
        for prefix in ("", "/api"):
            for method, path, handler in routes:
                if not (prefix and path == "/"):
                    app.router.add_route(method, prefix + path, handler)
        if extra_routes is not None:
            extra_routes(app)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = _route_name(request)
        if not route.startswith("/__fake__"):
            self.counters.request(f"{request.method} {route}")
        if self.faults.http_should_fail(request.method, route):
            return web.Response(status=500)
        try:
            return await handler(request)
        except web.HTTPNotFound:
            # Unknown paths: 404, empty body (what the real server's static fallback sends).
            return web.Response(status=404, content_type="application/octet-stream")

    # --- simple routes -------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(text="<html><body>fake ComfyUI 0.3.64</body></html>",
                            content_type="text/html")

    async def empty_ok(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    def static_body(self, name: str) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            return web.json_response(_static(name))
        return handler

    async def embeddings(self, request: web.Request) -> web.Response:
        return web.json_response([])

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(self.config.folder_keys())

    async def models_in(self, request: web.Request) -> web.Response:
        folder = request.match_info["folder"]
        if not self.config.lists_folder(folder):
            return web.Response(status=404)
        return web.json_response(list(self.config.models.get(folder, [])))

    def _pack_folder_paths(self) -> dict[str, list[str]]:
        """The GGUF pack registers its folders on the paths of the core ones (from its code;
        these two routes were recorded without the pack)."""
        recorded = _static("internal/folder_paths")
        return {key: recorded[GGUF_BASE_FOLDERS[key]] for key in GGUF_FOLDERS} \
            if self.config.gguf else {}

    async def folder_paths(self, request: web.Request) -> web.Response:
        return web.json_response({**_static("internal/folder_paths"),
                                  **self._pack_folder_paths()})

    async def experiment_models(self, request: web.Request) -> web.Response:
        pack = [{"name": key, "folders": paths} for key, paths in self._pack_folder_paths().items()]
        return web.json_response([*_static("experiment/models"), *pack])

    async def features(self, request: web.Request) -> web.Response:
        return web.json_response(dict(SERVER_FEATURES))

    async def system_stats(self, request: web.Request) -> web.Response:
        config = self.config
        argv = ["main.py", *(["--cpu"] if config.cpu else []), "--listen", config.host,
                "--port", str(config.port)]
        if config.preview_method != "none":
            argv += ["--preview-method", config.preview_method]
        device = self.memory.device()
        system = {**SYSTEM, "argv": argv}
        if config.cpu:
            # As recorded from `--cpu`: the device is the RAM, so the system figures agree.
            system.update(pytorch_version=CPU_PYTORCH_VERSION, ram_total=device["vram_total"],
                          ram_free=device["vram_free"])
        return web.json_response({"system": system, "devices": [device]})

    async def upload_image(self, request: web.Request) -> web.Response:
        return await files.upload(request, self.config)

    async def upload_mask(self, request: web.Request) -> web.Response:
        return await files.upload(request, self.config, mask=True)

    async def view(self, request: web.Request) -> web.StreamResponse:
        return await files.view(request, self.config)

    async def get_object_info(self, request: web.Request) -> web.Response:
        return web.json_response(self.object_info())

    async def get_object_info_class(self, request: web.Request) -> web.Response:
        name = request.match_info["node_class"]
        info = self.object_info()
        return web.json_response({name: info[name]} if name in info else {})

    # --- queue and history ---------------------------------------------------------------

    async def get_prompt(self, request: web.Request) -> web.Response:
        return web.json_response({"exec_info": {"queue_remaining": self.executor.queue.remaining()}})

    async def post_prompt(self, request: web.Request) -> web.Response:
        json_data = await request.json()        # not JSON → 500 text page, as the real one
        queue = self.executor.queue
        if "number" in json_data:
            number: float = float(json_data["number"])
        else:
            number = queue.number
            if json_data.get("front"):
                number = -number
            queue.number += 1
        self.counters.add("prompts_posted")
        prompt = json_data.get("prompt") if "prompt" in json_data else None
        prompt_id = str(json_data.get("prompt_id", uuid.uuid4()))
        result = validate_prompt(prompt, self.object_info(),
                                 input_files=self.config.input_files(),
                                 partial_execution_targets=json_data.get("partial_execution_targets"))
        if not result.ok:
            self.counters.add("prompts_rejected")
            return web.json_response(result.body, status=400)
        extra_data = dict(json_data.get("extra_data") or {})
        if "client_id" in json_data:
            extra_data["client_id"] = json_data["client_id"]
        sensitive = {k: extra_data.pop(k) for k in SENSITIVE_EXTRA_DATA_KEYS if k in extra_data}
        assert prompt is not None
        queue.put(QueueItem(number, prompt_id, prompt, extra_data,
                            list(result.outputs_to_execute), sensitive))
        return web.json_response({"prompt_id": prompt_id, "number": number,
                                  "node_errors": result.node_errors})

    async def get_queue(self, request: web.Request) -> web.Response:
        queue = self.executor.queue
        running = [queue.running.as_list()] if queue.running else []
        return web.json_response({"queue_running": running,
                                  "queue_pending": [i.as_list() for i in queue.pending]})

    async def post_queue(self, request: web.Request) -> web.Response:
        json_data = await request.json()
        if json_data.get("clear"):
            self.executor.queue.wipe()
        for prompt_id in json_data.get("delete", []) if "delete" in json_data else []:
            self.executor.queue.delete(prompt_id)
        return web.Response(status=200)

    async def interrupt(self, request: web.Request) -> web.Response:
        try:
            json_data = await request.json()
        except json.JSONDecodeError:
            json_data = {}
        self.counters.add("interrupts")
        prompt_id = json_data.get("prompt_id") if isinstance(json_data, dict) else None
        if self.executor.interrupt(prompt_id):
            self.counters.add("interrupts_applied")
        return web.Response(status=200)

    async def free(self, request: web.Request) -> web.Response:
        json_data = await request.json()
        self.counters.add("frees")
        if json_data.get("unload_models", False):
            self.executor.queue.set_flag("unload_models", json_data["unload_models"])
        if json_data.get("free_memory", False):
            self.executor.queue.set_flag("free_memory", json_data["free_memory"])
        return web.Response(status=200)

    async def get_history(self, request: web.Request) -> web.Response:
        query = request.rel_url.query
        max_items = int(query["max_items"]) if "max_items" in query else None
        offset = int(query["offset"]) if "offset" in query else -1
        return web.json_response(self.history.get(max_items, offset))

    async def get_history_one(self, request: web.Request) -> web.Response:
        return web.json_response(self.history.one(request.match_info["prompt_id"]))

    async def post_history(self, request: web.Request) -> web.Response:
        json_data = await request.json()
        if json_data.get("clear"):
            self.history.clear()
        for prompt_id in json_data.get("delete", []) if "delete" in json_data else []:
            self.history.delete(prompt_id)
        return web.Response(status=200)


def _route_name(request: web.Request) -> str:
    """The route pattern without the /api prefix, e.g. "/history/{prompt_id}"."""
    route = request.match_info.route
    resource = route.resource if route is not None else None
    name = resource.canonical if resource is not None else request.path
    if name.startswith("/api/"):
        name = name[4:]
    return name


def _static(name: str) -> Any:
    misc = recorded_misc()
    if name == "extensions":
        return misc["GET /extensions"]["body_summary"]
    if name == "i18n":
        return {lang: {} for lang in misc["GET /i18n"]["body_summary"]}
    if name == "workflow_templates":
        return {pack: [] for pack in misc["GET /workflow_templates"]["body_summary"]}
    if name == "internal/logs/raw":
        return {"entries": [], "size": {"cols": 120, "rows": 40}}
    return misc[f"GET /{name}"]["body"]

"""The studio's HTTP routes beside the UI: an OpenAI-style images and chat API, /healthz and
/metrics.

Module-level handlers on `router`; each finds the StudioContext on `request.app.state`
(app.py puts it there), so a test can call one handler with a request of its own. Every job
is handed to the desk (`ctx.desk.submit_many`) for the caller's key, the same path as the UI:
a full line is a 429 with Retry-After at once, a client that hangs up stops its jobs, and each
result is in the library (its id in the answer). Errors come back in OpenAI's JSON shape with
a status per failure kind (docs/api.md has the table); no stack trace ever leaves the server,
and nothing names ComfyUI's address. Gradio's login does not cover these routes, so /v1/*
checks its own bearer key (STUDIO_API_KEY). A method a path does not take is a 405.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute

from backend.api import chat, running
from backend.api.auth import api_who, check_bearer
from backend.api.edits import (
    build_edit_requests,
    build_request,
    models_of,
    param_names,
    per_image,
    read_form,
)
from backend.api.errors import ApiError, error_response
from backend.api.running import ParamOf, Result, png_bytes
from backend.api.schemas import OWNER, model_ids, parse_common, pick_model, text
from backend.context import StudioContext
from backend.metrics import CONTENT_TYPE
from backend.modes import ApiInput, ApiRoute
from backend.monitor import Monitor, MonitorSnapshot
from backend.prompts import load_styles
from backend.requests import InvalidRequest, RequestBase

log = logging.getLogger(__name__)

PARSE_INLINE_BYTES = 256 * 1024   # larger JSON bodies are parsed in a worker thread
HEALTH_REFRESH_S = 15.0
Handler = Callable[[Request], Awaitable[Response]]

router = APIRouter()


def context(http: Request) -> StudioContext:
    ctx = http.app.state.studio_context
    if not isinstance(ctx, StudioContext):
        raise RuntimeError("app.state.studio_context is not a StudioContext")
    return ctx


def guarded(*, auth: bool) -> Callable[[Handler], Handler]:
    """Bearer check (for /v1/*), ApiError → its JSON answer, anything else → a plain 500."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def route(http: Request) -> Response:
            try:
                if auth:
                    check_bearer(http, context(http).settings.api_key)
                return await handler(http)
            except ApiError as exc:
                return exc.to_response()
            except Exception:  # never a stack trace to the client; the log has it
                log.exception("%s %s failed", http.method, http.url.path)
                return error_response(
                    500, "Internal error in the studio; see its log.", code="internal"
                )

        return route

    return wrap


# -- answers -----------------------------------------------------------------------------------
def _variants(ctx: StudioContext) -> Callable[[str], list[str]]:
    def variants(mode: str) -> list[str]:
        try:
            return ctx.templates.variants(mode)
        except OSError:  # an unreadable folder: only the default ids
            return ["default"]

    return variants


def _images_body(results: list[Result], prompt: str) -> dict[str, Any]:
    data = [
        {
            "b64_json": base64.b64encode(png_bytes(r.image, r.item_id)).decode("ascii"),
            "revised_prompt": prompt,
            "seed": r.finished.seed,
            # What the studio did to the input (first GIF frame, scaling, padding grid…).
            "notes": list(r.finished.notes),
            "id": r.item_id,    # the library item (None when the library could not keep it)
        }
        for r in results
    ]
    body: dict[str, Any] = {"created": int(time.time()), "data": data, "output_format": "png"}
    if results:   # what ran: an out-of-memory retry may have used a smaller size
        w, h = results[0].image.size
        body["size"] = f"{w}x{h}"
    return body


def styled(ctx: StudioContext, name: object, requests: list[RequestBase]) -> list[RequestBase]:
    """`style`: a saved style's name (backend/prompts), appended to prompt and negative."""
    if name is None or name == "":
        return requests
    if not isinstance(name, str):
        raise ApiError(400, "'style' must be a style's name.", param="style",
                       code="invalid_input")
    book = load_styles(ctx.settings.library.data_dir)
    try:
        return [book.styled(request, name) for request in requests]
    except InvalidRequest as exc:
        raise ApiError(400, exc.message, param="style", code="invalid_input") from None


async def _run(
    ctx: StudioContext, http: Request, requests: list[RequestBase], param_of: ParamOf,
    *, parent_id: str | None = None,
) -> list[Result]:
    """n images = one batch through the desk, for the caller's key (429 when it is full)."""
    who = api_who(ctx.settings.api_key, "api")
    jobs = running.submit(ctx, requests, who, param_of=param_of, parent_id=parent_id)
    return await running.results(ctx, jobs, who, http, param_of=param_of)


# -- routes ------------------------------------------------------------------------------------
@router.post("/v1/images/generations", include_in_schema=False)
@guarded(auth=True)
async def generations(http: Request) -> Response:
    ctx = context(http)
    body = await read_json(http)
    specs = ctx.registry.on_route(ApiRoute.GENERATIONS)
    choice = pick_model(ctx.aliases.resolve(body.get("model")), models_of(specs), _variants(ctx))
    spec = ctx.registry.get(choice.mode)
    prompt = text(body.get("prompt"), "prompt", required=spec.prompt_required)
    base = build_request(spec, ApiInput(body, prompt, (), None, ctx.settings))
    requests = styled(ctx, body.get("style"), per_image(base, parse_common(body), choice))
    results = await _run(ctx, http, requests, param_names(spec))
    return JSONResponse(await asyncio.to_thread(_images_body, results, prompt))


@router.post("/v1/images/edits", include_in_schema=False)
@guarded(auth=True)
async def edits(http: Request) -> Response:
    ctx = context(http)
    settings = ctx.settings
    form = await read_form(http, settings)
    if "model" in form.fields:
        form = replace(form, fields={**form.fields, "model": ctx.aliases.resolve(form.fields["model"])})
    choice, requests = await asyncio.to_thread(
        build_edit_requests, form, settings, ctx.registry, _variants(ctx)
    )
    requests = styled(ctx, form.fields.get("style"), requests)
    who = api_who(settings.api_key, "api")
    parent = await running.parent_of(ctx, form.images[0] if form.images else None, who.owner)
    results = await _run(ctx, http, requests, param_names(ctx.registry.get(choice.mode)),
                         parent_id=parent)
    prompt = str(form.fields.get("prompt") or "")
    return JSONResponse(await asyncio.to_thread(_images_body, results, prompt))


@router.post("/v1/chat/completions", include_in_schema=False)
@guarded(auth=True)
async def chat_completions(http: Request) -> Response:
    """OpenAI's chat completions (whole or streamed) over the chat core: backend/api/chat.py."""
    ctx = context(http)
    return await chat.complete(ctx, http, await read_json(http))


@router.api_route("/v1/models", methods=["GET", "HEAD"], include_in_schema=False)
@guarded(auth=True)
async def models(http: Request) -> Response:
    ctx = context(http)
    variants = _variants(ctx)
    ids = [
        model_id
        for route in ApiRoute
        for model_id in model_ids(models_of(ctx.registry.on_route(route)), variants)
    ]
    ids.append(chat.CHAT_MODEL)
    ids += [alias for alias in ctx.aliases.ids() if alias not in ids]
    data = [
        {"id": i, "object": "model", "created": ctx.started_at, "owned_by": OWNER} for i in ids
    ]
    return JSONResponse({"object": "list", "data": data})


@router.api_route("/healthz", methods=["GET", "HEAD"], include_in_schema=False)
@guarded(auth=False)
async def healthz(http: Request) -> Response:
    """The shared poller's latest answer (cheap: bursts of probes cost ComfyUI nothing), or,
    with `?fresh=1` (`python app.py health`), a poll made now — one for all who ask at once."""
    ctx = context(http)
    snap = ctx.monitor.snapshot()
    fresh_for = max(2 * ctx.settings.poll_interval_s, 5.0)
    wants_fresh = http.query_params.get("fresh", "") not in ("", "0", "false")
    if wants_fresh or snap.checked_at is None or time.time() - snap.checked_at > fresh_for:
        try:
            async with asyncio.timeout(HEALTH_REFRESH_S):
                snap = await _shared_refresh(ctx)
        except TimeoutError:
            pass     # the latest poll says what is known
        except Exception:   # the poll handles ComfyUI's errors: this is a bug of ours
            log.exception("/healthz could not refresh the monitor")
    servers = ctx.monitor.server_snapshots()
    body = {
        "studio": "ok",
        "comfyui": _comfyui(snap),     # all servers together (the only one's, with one)
        "servers": {label: _server(one) for label, one in servers.items()},
        "modes": {
            mode: {"ready": status.ready, "missing": status.missing}
            | ({"servers": sum(1 for one in servers.values() if one.online and _ready(one, mode))}
               if len(servers) > 1 else {})     # several servers: on how many it is ready
            for mode, status in snap.modes.items()
        },
    }
    # 200 while some server answers: every mode reported ready is ready on an online server.
    return JSONResponse(body, status_code=200 if snap.online else 503)


def _comfyui(snap: MonitorSnapshot) -> dict[str, Any]:
    return {
        "reachable": snap.online,
        "version": snap.comfyui_version,
        "websocket_connected": snap.websocket_connected,
        "error": snap.error,
        "queue_running": len(snap.queue_running),
        "queue_pending": len(snap.queue_pending),
    }


def _server(snap: MonitorSnapshot) -> dict[str, Any]:
    """One server by its label (never its address): reachability, queue, what it holds, and
    readiness per mode (true, false, or null while unknown)."""
    return {
        **_comfyui(snap),
        "studio_running": snap.studio_running,
        "loaded": snap.loaded_file,
        "vram_total": snap.vram_total,
        "vram_free": snap.vram_free,
        "modes": {mode: status.ready for mode, status in snap.modes.items()},
    }


def _ready(snap: MonitorSnapshot, mode: str) -> bool:
    status = snap.modes.get(mode)
    return status is not None and status.ready is True


@router.api_route("/metrics", methods=["GET", "HEAD"], include_in_schema=False)
@guarded(auth=False)
async def metrics(http: Request) -> Response:
    ctx = context(http)
    ctx.metrics.update_from_snapshot(ctx.monitor.snapshot())
    ctx.metrics.update_from_servers(ctx.monitor.server_snapshots())
    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE)


_refreshes: weakref.WeakKeyDictionary[Monitor, asyncio.Future[MonitorSnapshot]] = (
    weakref.WeakKeyDictionary()
)


async def _shared_refresh(ctx: StudioContext) -> MonitorSnapshot:
    """One poll of ComfyUI for every caller that asks while it runs."""
    running_poll = _refreshes.get(ctx.monitor)
    if running_poll is None or running_poll.done():
        running_poll = asyncio.ensure_future(ctx.monitor.refresh_now())
        _refreshes[ctx.monitor] = running_poll
    return await asyncio.shield(running_poll)


# -- reading requests --------------------------------------------------------------------------
async def read_json(http: Request) -> dict[str, Any]:
    """The body as a JSON object, whatever its declared content type (`curl -d` says
    form-encoded). Its size is limited while it is read (api/body_limits.py); nesting deeper
    than the parser allows is a 400, like any other bad JSON."""
    raw = await http.body()
    if len(raw) > PARSE_INLINE_BYTES:     # a chat turn with pictures: megabytes of JSON
        return await asyncio.to_thread(parse_json, raw)
    return parse_json(raw)


def parse_json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"null")
    except RecursionError:
        raise ApiError(400, "The JSON body is nested too deeply.", code="invalid_json") from None
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "The body is not valid JSON.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object.", code="invalid_json")
    return body


# -- every other method on our paths: 405 with Allow (not Gradio's 404) ------------------------
OTHER_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _method_not_allowed(allowed: list[str]) -> Handler:
    allow = ", ".join(allowed)

    async def not_allowed(http: Request) -> Response:
        return error_response(
            405, f"{http.method} is not allowed on {http.url.path}; use {allow}.",
            code="method_not_allowed", headers={"Allow": allow},
        )

    return not_allowed


def _answer_other_methods() -> None:
    """Each path of ours answers the methods it does not take with 405 and `Allow`; without
    this, the UI mounted at "/" would answer them 404."""
    taken: dict[str, set[str]] = {}
    for route in router.routes:
        if isinstance(route, APIRoute):
            taken.setdefault(route.path, set()).update(route.methods or ())
    for path, methods in taken.items():
        allowed = sorted(methods)
        others = [m for m in OTHER_METHODS if m not in methods]
        router.add_api_route(path, _method_not_allowed(allowed), methods=others,
                             include_in_schema=False)


_answer_other_methods()

"""The studio's HTTP routes beside the UI: an OpenAI-style images API, /healthz and /metrics.

Module-level handlers on `router`; each finds the StudioContext on `request.app.state`
(app.py puts it there), so a test can call one handler with a request of its own. Every job
goes through `ctx.studio.run(request, surface="api")`, the same path as the UI. Errors come
back in OpenAI's JSON shape with a status per failure kind (docs/api.md has the table); no
stack trace ever leaves the server, and nothing names ComfyUI's address. Gradio's login does
not cover these routes, so /v1/* checks its own bearer key (STUDIO_API_KEY).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import io
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image

from backend.api.auth import check_bearer
from backend.api.edits import (
    api_param,
    build_edit_requests,
    build_request,
    models_of,
    per_image,
    read_form,
)
from backend.api.errors import ApiError, error_response
from backend.api.schemas import OWNER, model_ids, parse_common, pick_model, text
from backend.context import StudioContext
from backend.events import Failed, Finished
from backend.metrics import CONTENT_TYPE
from backend.modes import ApiInput, ApiRoute
from backend.redaction import scrub
from backend.requests import InvalidRequest, RequestBase

log = logging.getLogger(__name__)

MAX_JSON_BYTES = 1024 * 1024
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


# -- running jobs ------------------------------------------------------------------------------
def _variants(ctx: StudioContext) -> Callable[[str], list[str]]:
    def variants(mode: str) -> list[str]:
        try:
            return ctx.templates.variants(mode)
        except OSError:  # an unreadable folder: only the default ids
            return ["default"]

    return variants


def _validate(ctx: StudioContext, request: RequestBase) -> None:
    try:
        ctx.registry.operation_for(request).validate(request, ctx.settings)
    except InvalidRequest as exc:
        raise ApiError(400, exc.message, param=api_param(exc.field), code="invalid_input") from None


async def _run_one(ctx: StudioContext, request: RequestBase) -> Finished:
    events = ctx.studio.run(request, surface="api")
    try:
        async for event in events:
            if isinstance(event, Finished):
                return event
            if isinstance(event, Failed):
                error = ApiError.from_failure(event.kind, scrub(event.message, ctx.settings.comfy_url))
                error.param = api_param(event.field)
                raise error
    finally:
        await events.aclose()
    raise ApiError(502, "The job ended without a result.", code="no_result")


async def _run_all(
    ctx: StudioContext, requests: list[RequestBase], http: Request
) -> list[tuple[Finished, Image.Image]]:
    """n runs one after another; a client that hangs up cancels the job in ComfyUI."""
    for request in requests:
        _validate(ctx, request)   # all of them first: never run two and then refuse the third
    results = []
    for request in requests:
        job = asyncio.ensure_future(_run_one(ctx, request))
        watcher = asyncio.ensure_future(_wait_disconnect(http))
        try:
            await asyncio.wait({job, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            if not job.done():
                job.cancel()
                log.info("client went away: cancelling its %s job", request.mode)
                with contextlib.suppress(asyncio.CancelledError, ApiError):
                    await job
        if job.cancelled():
            raise ApiError(499, "The client closed the request.", code="client_closed")
        finished = job.result()
        for image in finished.images:
            results.append((finished, image))
    return results


def _images_body(results: list[tuple[Finished, Image.Image]], prompt: str) -> dict[str, Any]:
    data = [
        {
            "b64_json": _png_b64(image),
            "revised_prompt": prompt,
            "seed": finished.seed,
            # What the studio did to the input (first GIF frame, scaling, padding grid…).
            "notes": list(finished.notes),
        }
        for finished, image in results
    ]
    body: dict[str, Any] = {"created": int(time.time()), "data": data, "output_format": "png"}
    if results:   # what ran: an out-of-memory retry may have used a smaller size
        w, h = results[0][1].size
        body["size"] = f"{w}x{h}"
    return body


# -- routes ------------------------------------------------------------------------------------
@router.post("/v1/images/generations", include_in_schema=False)
@guarded(auth=True)
async def generations(http: Request) -> Response:
    ctx = context(http)
    body = await _read_json(http)
    specs = ctx.registry.on_route(ApiRoute.GENERATIONS)
    choice = pick_model(body.get("model"), models_of(specs), _variants(ctx))
    spec = ctx.registry.get(choice.mode)
    prompt = text(body.get("prompt"), "prompt", required=spec.prompt_required)
    base = build_request(spec, ApiInput(body, prompt, (), None, ctx.settings))
    requests = per_image(base, parse_common(body), choice)
    results = await _run_all(ctx, requests, http)
    return JSONResponse(await asyncio.to_thread(_images_body, results, prompt))


@router.post("/v1/images/edits", include_in_schema=False)
@guarded(auth=True)
async def edits(http: Request) -> Response:
    ctx = context(http)
    settings = ctx.settings
    _check_length(http, settings.max_upload_bytes * 5 + MAX_JSON_BYTES)
    form = await read_form(http, settings)
    _choice, requests = await asyncio.to_thread(
        build_edit_requests, form, settings, ctx.registry, _variants(ctx)
    )
    results = await _run_all(ctx, requests, http)
    prompt = str(form.fields.get("prompt") or "")
    return JSONResponse(await asyncio.to_thread(_images_body, results, prompt))


@router.get("/v1/models", include_in_schema=False)
@guarded(auth=True)
async def models(http: Request) -> Response:
    ctx = context(http)
    variants = _variants(ctx)
    ids = [
        model_id
        for route in ApiRoute
        for model_id in model_ids(models_of(ctx.registry.on_route(route)), variants)
    ]
    data = [
        {"id": i, "object": "model", "created": ctx.started_at, "owned_by": OWNER} for i in ids
    ]
    return JSONResponse({"object": "list", "data": data})


@router.get("/healthz", include_in_schema=False)
@guarded(auth=False)
async def healthz(http: Request) -> Response:
    ctx = context(http)
    snap = ctx.monitor.snapshot()
    fresh_for = max(2 * ctx.settings.poll_interval_s, 5.0)
    if snap.checked_at is None or time.time() - snap.checked_at > fresh_for:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(HEALTH_REFRESH_S):
                snap = await ctx.monitor.refresh_now()
    body = {
        "studio": "ok",
        "comfyui": {
            "reachable": snap.online,
            "version": snap.comfyui_version,
            "websocket_connected": snap.websocket_connected,
            "error": snap.error,
            "queue_running": len(snap.queue_running),
            "queue_pending": len(snap.queue_pending),
        },
        "modes": {
            mode: {"ready": status.ready, "missing": status.missing}
            for mode, status in snap.modes.items()
        },
    }
    return JSONResponse(body, status_code=200 if snap.online else 503)


@router.get("/metrics", include_in_schema=False)
@guarded(auth=False)
async def metrics(http: Request) -> Response:
    ctx = context(http)
    ctx.metrics.update_from_snapshot(ctx.monitor.snapshot())
    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE)


# -- reading requests --------------------------------------------------------------------------
def _check_length(http: Request, limit: int) -> None:
    raw = http.headers.get("content-length")
    if raw and raw.isdigit() and int(raw) > limit:
        raise ApiError(
            413, f"The request is {int(raw) / 1e6:.1f} MB; the limit is {limit / 1e6:.0f} MB.",
            code="request_too_large",
        )


async def _read_json(http: Request) -> dict[str, Any]:
    _check_length(http, MAX_JSON_BYTES)
    raw = await http.body()
    if len(raw) > MAX_JSON_BYTES:
        raise ApiError(413, "The JSON body is over 1 MB.", code="request_too_large")
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "The body is not valid JSON.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object.", code="invalid_json")
    return body


async def _wait_disconnect(http: Request) -> None:
    # The body is already read, so the next ASGI message is the client hanging up.
    while (await http.receive())["type"] != "http.disconnect":
        pass


def _png_b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    # ComfyUI's own SaveImage level: level 6 (Pillow's default) costs 2-7x the time here
    # for ~30% fewer bytes, which a LAN does not need.
    image.save(buffer, format="PNG", compress_level=4)
    return base64.b64encode(buffer.getvalue()).decode("ascii")

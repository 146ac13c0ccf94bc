"""The studio's HTTP routes beside the UI: an OpenAI-style images API, /healthz and /metrics.

Every job goes through `ctx.studio.run(request)`, the same path as the UI. Errors come back in
OpenAI's JSON shape with a status per failure kind (docs/api.md has the table); no stack trace
ever leaves the server, and nothing names ComfyUI's address. Gradio's login does not cover
these routes, so /v1/* checks its own bearer key (STUDIO_API_KEY).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from backend.api.auth import check_bearer
from backend.api.edits import build_edit_requests, read_form
from backend.api.errors import ApiError, error_response
from backend.api.schemas import (
    DEFAULT_GENERATE_MODEL,
    EDIT_MODELS,
    GENERATE_MODELS,
    OWNER,
    model_ids,
    parse_common,
    parse_size,
    pick_model,
    seed_for,
    text,
)
from backend.metrics import CONTENT_TYPE, instrument, surface
from backend.monitor import scrub
from backend.operations import OPERATIONS, GenerateRequest, InvalidRequest
from backend.settings import MODES

log = logging.getLogger(__name__)

MAX_JSON_BYTES = 1024 * 1024
HEALTH_REFRESH_S = 15.0
# Request fields of the operations that the API calls by another name.
PARAM_NAMES = {"width": "size", "height": "size", "images": "image", "image1": "image"}

Handler = Callable[[Request], Awaitable[Response]]


def build_api_router(ctx: Any) -> APIRouter:
    settings = ctx.settings
    metrics = instrument(ctx.studio)
    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        # Start the shared poller on the server's loop: the UI's timer handlers may run in
        # worker threads, where snapshot() cannot start it.
        ctx.monitor.start()
        yield

    router = APIRouter(lifespan=lifespan)
    started = int(time.time())
    if settings.auth and not settings.api_key:
        log.warning("the UI has a login but STUDIO_API_KEY is not set: /v1/* is open to anyone")

    def variants(mode: str) -> list[str]:
        try:
            return ctx.library.variants(mode)
        except Exception:  # an unreadable folder: only the default ids
            return ["default"]

    def guarded(handler: Handler, *, auth: bool) -> Handler:
        async def route(request: Request) -> Response:
            try:
                if auth:
                    check_bearer(request, settings.api_key)
                return await handler(request)
            except ApiError as exc:
                return exc.to_response()
            except Exception:  # never a stack trace to the client; the log has it
                log.exception("%s %s failed", request.method, request.url.path)
                return error_response(500, "Internal error in the studio; see its log.", code="internal")

        return route

    # -- running jobs --------------------------------------------------------------------------
    def validate(request: Any) -> None:
        try:
            OPERATIONS[request.mode].validate(request, settings)
        except InvalidRequest as exc:
            param = PARAM_NAMES.get(exc.field or "", exc.field)
            raise ApiError(400, exc.message, param=param, code="invalid_input") from None

    async def run_one(request: Any) -> Any:
        with surface("api"):
            events = ctx.studio.run(request)
        try:
            async for event in events:
                kind = type(event).__name__
                if kind == "Finished":
                    return event
                if kind == "Failed":
                    error = ApiError.from_failure(
                        event.kind, scrub(event.message, settings.comfy_url)
                    )
                    field = getattr(event, "field", None)
                    error.param = PARAM_NAMES.get(field or "", field)
                    raise error
        finally:
            await events.aclose()
        raise ApiError(502, "The job ended without a result.", code="no_result")

    async def run_all(requests: list[Any], http: Request) -> list[tuple[Any, Any]]:
        """n runs one after another; a client that hangs up cancels the job in ComfyUI."""
        for request in requests:
            validate(request)     # all of them first: never run two and then refuse the third
        results = []
        for request in requests:
            job = asyncio.ensure_future(run_one(request))
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

    def images_response(results: list[tuple[Any, Any]], prompt: str) -> dict:
        data = [
            {
                "b64_json": _png_b64(image),
                "revised_prompt": prompt,
                "seed": finished.seed,
                # What the studio did to the input (first GIF frame, scaling, padding grid…).
                "notes": list(_notes(finished)),
            }
            for finished, image in results
        ]
        body: dict[str, Any] = {"created": int(time.time()), "data": data, "output_format": "png"}
        if results:   # what ran: an out-of-memory retry may have used a smaller size
            w, h = results[0][1].size
            body["size"] = f"{w}x{h}"
        return body

    # -- routes --------------------------------------------------------------------------------
    async def generations(http: Request) -> Response:
        body = await _read_json(http)
        choice = pick_model(body.get("model"), GENERATE_MODELS, DEFAULT_GENERATE_MODEL, variants)
        prompt = text(body.get("prompt"), "prompt", required=True)
        width, height = parse_size(body.get("size"), settings.max_generate_pixels)
        common = parse_common(body)
        requests = [
            GenerateRequest(
                prompt=prompt,
                width=width,
                height=height,
                seed=seed_for(common, i),
                steps=common.steps,
                cfg=common.cfg,
                variant=choice.variant,
                negative_prompt=common.negative_prompt,
            )
            for i in range(common.n)
        ]
        results = await run_all(requests, http)
        return JSONResponse(await asyncio.to_thread(images_response, results, prompt))

    async def edits(http: Request) -> Response:
        _check_length(http, settings.max_upload_bytes * 5 + MAX_JSON_BYTES)
        form = await read_form(http, settings)
        _choice, requests = await asyncio.to_thread(
            build_edit_requests, form, settings, variants
        )
        results = await run_all(requests, http)
        prompt = str(form.fields.get("prompt") or "")
        return JSONResponse(await asyncio.to_thread(images_response, results, prompt))

    async def models(_http: Request) -> Response:
        ids = model_ids(GENERATE_MODELS, variants) + model_ids(EDIT_MODELS, variants)
        data = [{"id": i, "object": "model", "created": started, "owned_by": OWNER} for i in ids]
        return JSONResponse({"object": "list", "data": data})

    async def healthz(_http: Request) -> Response:
        snap = ctx.monitor.snapshot()
        fresh_for = max(2 * settings.poll_interval_s, 5.0)
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

    async def metrics_route(_http: Request) -> Response:
        metrics.update_from_snapshot(ctx.monitor.snapshot())
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    router.add_api_route(
        "/v1/images/generations", guarded(generations, auth=True), methods=["POST"],
        include_in_schema=False,
    )
    router.add_api_route(
        "/v1/images/edits", guarded(edits, auth=True), methods=["POST"], include_in_schema=False
    )
    router.add_api_route(
        "/v1/models", guarded(models, auth=True), methods=["GET"], include_in_schema=False
    )
    router.add_api_route("/healthz", guarded(healthz, auth=False), methods=["GET"],
                         include_in_schema=False)
    router.add_api_route("/metrics", guarded(metrics_route, auth=False), methods=["GET"],
                         include_in_schema=False)
    log.info("API routes ready: /v1/images/generations, /v1/images/edits, /v1/models, "
             "/healthz, /metrics (modes: %s)", ", ".join(MODES))
    return router


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


def _notes(finished: Any) -> tuple[str, ...]:
    info = getattr(finished, "info", ()) or ()
    return (info,) if isinstance(info, str) else tuple(info)


def _png_b64(image: Any) -> str:
    buffer = io.BytesIO()
    # ComfyUI's own SaveImage level: level 6 (Pillow's default) costs 2-7x the time here
    # for ~30% fewer bytes, which a LAN does not need.
    image.save(buffer, format="PNG", compress_level=4)
    return base64.b64encode(buffer.getvalue()).decode("ascii")

"""`POST /v1/chat/completions`: one chat turn → one studio job through the desk → a chat reply.

The chat core (`backend/chat/`) reads the conversation and decides; this module is the HTTP
half: the model name, the decision turned into the mode's request (from the registry, by the
mode's declared inputs), the job handed to the desk (surface "chat", its parent the library
item the source picture came from when the picture says so), and the answer, whole or as
server-sent events. Streaming sends the role chunk at once, a keep-alive comment every
`KEEP_ALIVE_S` while the job runs (a proxy's idle timeout must not cut a long job), then the
content, then `[DONE]`. A client that hangs up stops its job. Errors before the stream starts
are plain HTTP errors in OpenAI's shape (400, 413, 429 …); a failure after it started is an
error event (the status is already 200), then `[DONE]`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.requests import Request

from backend.api import running
from backend.api.auth import api_who
from backend.api.errors import ApiError, error_type
from backend.api.running import Result
from backend.api.schemas import optional_int
from backend.chat import (
    DONE,
    KEEP_ALIVE,
    ChatInputError,
    ChatTurn,
    CompletionMeta,
    Decision,
    completion_body,
    content_event,
    error_event,
    finish_event,
    help_text,
    operation,
    parse_messages,
    reply_text,
    role_event,
    stream_events,
)
from backend.chat.operation import ModeUnavailable, decide, unreadable_image
from backend.context import StudioContext
from backend.desk import Job, Who
from backend.events import Failed, Finished
from backend.modes import ModeRegistry
from backend.redaction import scrub
from backend.requests import RequestBase

log = logging.getLogger(__name__)

CHAT_MODEL = "qwen-image-chat"
KEEP_ALIVE_S = 10.0
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}   # nginx: do not buffer


@dataclass(frozen=True)
class ChatCall:
    """One request, read and decided."""

    meta: CompletionMeta
    stream: bool
    turn: ChatTurn
    decision: Decision
    seed: int | None = None     # OpenAI's `seed`: the studio's seed (None: random)


async def complete(ctx: StudioContext, http: Request, body: Mapping[str, Any]) -> Response:
    who = api_who(ctx.settings.api_key, "chat")
    call = await read_call(ctx, body)
    if call.decision.action == "help":
        return _help_answer(call)
    request = request_for(call.decision, call.turn, ctx.registry)
    if call.seed is not None:
        request = replace(request, seed=call.seed)
    source = call.turn.source_image if call.decision.action != "generate" else None
    parent = await running.parent_of(ctx, source.data if source else None, who.owner)
    (job,) = running.submit(ctx, [request], who, param_of=_chat_param, parent_id=parent,
                            label=call.turn.text)
    if call.stream:
        return StreamingResponse(_events(ctx, call, job, who), media_type="text/event-stream",
                                 headers=SSE_HEADERS)
    results = await running.results(ctx, [job], who, http, param_of=_chat_param)
    if not results:
        raise ApiError(502, "The job ended without a picture.", code="no_result")
    content, png = await asyncio.to_thread(_reply, call.decision, results[0])
    return JSONResponse(completion_body(call.meta, content, [png]))


async def read_call(ctx: StudioContext, body: Mapping[str, Any]) -> ChatCall:
    """The model, the stream flag and the conversation, then the decision (LLM router when
    configured, else the rules). Every refusal is an ApiError."""
    model = chat_model(body.get("model"), ctx)
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise ApiError(400, "'stream' must be true or false.", param="stream")
    seed = optional_int(body.get("seed"), "seed")     # range: the mode's check, as everywhere
    settings = ctx.settings
    try:
        # Base64 images decode here (megabytes): off the event loop.
        turn = await asyncio.to_thread(
            parse_messages, body.get("messages"), max_image_bytes=settings.max_upload_bytes
        )
    except ChatInputError as exc:
        status = 413 if exc.code == "file_too_large" else 400
        raise ApiError(status, exc.message, param=exc.param, code=exc.code) from None
    decision = await decide(turn, ctx.chat_router, max_pad=settings.pad_knob.high)
    bad = unreadable_image(decision, turn)
    if bad is not None:
        where = f"messages[{bad.message_index}]"
        raise ApiError(
            400,
            f"The image in {where} is not a picture the studio can read: send PNG, JPEG "
            "or WebP.",
            param=where,
        )
    return ChatCall(CompletionMeta.new(model), stream, turn, decision, seed)


def chat_model(raw: object, ctx: StudioContext) -> str:
    """`qwen-image-chat` (the default), by any alias or vendor prefix; anything else is 400."""
    resolved = ctx.aliases.resolve(raw)
    if resolved is None or resolved == "":
        return CHAT_MODEL
    if not isinstance(resolved, str):
        raise ApiError(400, "'model' must be a string.", param="model", code="invalid_model")
    name = resolved.strip().rsplit("/", 1)[-1].lower()
    if name == CHAT_MODEL:
        return CHAT_MODEL
    raise ApiError(
        400,
        f"The model '{str(raw)[:80]}' does not exist for chat. Use {CHAT_MODEL} (the image "
        "models are on /v1/images/generations and /v1/images/edits).",
        param="model", code="model_not_found",
    )


def request_for(decision: Decision, turn: ChatTurn, registry: ModeRegistry) -> RequestBase:
    """The decided mode's request (backend/chat/operation.py); a missing mode is a 400."""
    try:
        return operation.request_for(decision, turn, registry)
    except ModeUnavailable as exc:
        raise ApiError(400, exc.message, param="messages", code="mode_unavailable") from None


# --- answers ------------------------------------------------------------------------------------


def _reply(decision: Decision, result: Result) -> tuple[str, bytes]:
    png = running.png_bytes(result.image, result.item_id)
    content = reply_text(decision, seed=result.finished.seed, size=result.image.size, png=png)
    return content, png


def _help_answer(call: ChatCall) -> Response:
    text = help_text(call.decision)
    if call.stream:
        return StreamingResponse(_iterate(stream_events(call.meta, text)),
                                 media_type="text/event-stream", headers=SSE_HEADERS)
    return JSONResponse(completion_body(call.meta, text))


async def _iterate(events: tuple[str, ...]) -> AsyncIterator[str]:
    for event in events:
        yield event


async def _events(ctx: StudioContext, call: ChatCall, job: Job, who: Who) -> AsyncIterator[str]:
    """The streamed answer. Cancelled when the client hangs up: the job is stopped then."""
    yield role_event(call.meta)
    follower = asyncio.ensure_future(running.outcome(job))
    try:
        while not follower.done():
            done, _ = await asyncio.wait({follower}, timeout=KEEP_ALIVE_S)
            if not done:
                yield KEEP_ALIVE
        end, saved = follower.result()
        if isinstance(end, Finished) and not end.images:
            end = Failed("The job ended without a picture.", "", "execution")
        if isinstance(end, Failed):
            error = ApiError.from_failure(end.kind, scrub(end.message, ctx.settings.comfy_url))
            yield error_event(error.message, code=error.code or end.kind,
                              kind=error_type(error.status), param=_chat_param(end.field))
            yield DONE
            return
        items = saved.items if saved is not None else ()
        result = Result(end, end.images[0], items[0].id if items else None)
        content, png = await asyncio.to_thread(_reply, call.decision, result)
        yield content_event(call.meta, content, [png])
        yield finish_event(call.meta)
        yield DONE
    except Exception:   # the status is sent already: an error event, never a cut stream
        log.exception("chat stream failed")
        yield error_event("Internal error in the studio; see its log.", code="internal")
        yield DONE
    finally:
        follower.cancel()
        running.stop_unfinished(ctx, [job], who)


def _chat_param(field: str | None) -> str | None:
    """A request field at fault is, for a chat client, the conversation."""
    return "messages" if field else None

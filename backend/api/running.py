"""An API request's jobs, through the desk: handed in as one batch for the caller, refused at
once when they cannot be taken (400, or 429 with Retry-After), then followed to their results
— each with the library item the desk saved it as — or stopped when the client hangs up.

Both images routes and the chat route use it; the UI's batch count takes the same desk path.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PIL import Image, PngImagePlugin, UnidentifiedImageError
from starlette.requests import Request

from backend.api.errors import ApiError
from backend.context import StudioContext
from backend.desk import Job, Saved, Who
from backend.events import Failed, Finished
from backend.jobs import NotReadyAnywhere
from backend.redaction import scrub
from backend.requests import InvalidRequest, RequestBase
from backend.scheduler import QueueFull

log = logging.getLogger(__name__)

# The PNG text chunk our API answers carry: the library item the picture is. A client that
# sends the picture back (an edit, a chat turn) names the item it came from without knowing it.
ITEM_KEY = "banana-studio:item"
MAX_ITEM_ID_CHARS = 64
# ComfyUI's own SaveImage level: Pillow's default 6 costs 2-7x the time for ~30% fewer bytes.
PNG_COMPRESS_LEVEL = 4

ParamOf = Callable[[str | None], str | None]
Ending = tuple[Finished | Failed, Saved | None]     # a job's outcome, and what was saved


@dataclass(frozen=True)
class Result:
    """One picture of a finished job, and the library item it was saved as (None: not kept)."""

    finished: Finished
    image: Image.Image
    item_id: str | None


def submit(
    ctx: StudioContext,
    requests: Sequence[RequestBase],
    who: Who,
    *,
    param_of: ParamOf,
    parent_id: str | None = None,
    label: str | None = None,
) -> list[Job]:
    """Hand the batch in: all taken, or an ApiError now (nothing waits, nothing is left)."""
    try:
        return ctx.desk.submit_many(requests, who, parent_id=parent_id, label=label)
    except NotReadyAnywhere as exc:     # no server has what the mode needs: like a missing model
        raise ApiError.from_failure("missing_models", exc.message) from None
    except InvalidRequest as exc:
        raise ApiError(400, exc.message, param=param_of(exc.field), code="invalid_input") from None
    except QueueFull as exc:
        raise ApiError.queue_full(exc.message, exc.retry_after_s) from None


async def results(
    ctx: StudioContext, jobs: Sequence[Job], who: Who, http: Request, *, param_of: ParamOf
) -> list[Result]:
    """Every job's pictures, in batch order. The first failure stops the other jobs and is
    raised as an ApiError; a client that hangs up stops them all."""
    followers = [asyncio.ensure_future(_follow(job)) for job in jobs]
    all_done = asyncio.ensure_future(_until_failure(ctx, followers, param_of))
    gone = asyncio.ensure_future(wait_disconnect(http))
    try:
        await asyncio.wait({all_done, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not all_done.done():
            log.info("client went away: stopping its %d job(s)", len(jobs))
            raise ApiError(499, "The client closed the request.", code="client_closed")
        all_done.result()     # the first failure, as an ApiError
    finally:
        gone.cancel()
        all_done.cancel()
        stop_unfinished(ctx, jobs, who)
        for follower in followers:
            follower.cancel()
    out: list[Result] = []
    for follower in followers:
        finished, saved = follower.result()
        assert isinstance(finished, Finished)
        ids = saved.items if saved is not None else ()
        for index, image in enumerate(finished.images):
            out.append(Result(finished, image, ids[index].id if index < len(ids) else None))
    return out


async def _until_failure(
    ctx: StudioContext, followers: Sequence[asyncio.Future[Ending]], param_of: ParamOf
) -> None:
    """Returns when every job finished; raises the first failure (in the order they end)."""
    for next_done in asyncio.as_completed(followers):
        end, _saved = await next_done
        if isinstance(end, Failed):
            raise ApiError.from_failure(
                end.kind, scrub(end.message, ctx.settings.comfy_url), param_of(end.field)
            )


async def outcome(job: Job) -> Ending:
    """A job's Finished (with its Saved) or Failed."""
    return await _follow(job)


def stop_unfinished(ctx: StudioContext, jobs: Sequence[Job], who: Who) -> None:
    for job in jobs:
        if not job.done:
            ctx.desk.stop(who.person, job.id)


async def _follow(job: Job) -> Ending:
    end: Finished | Failed | None = None
    saved: Saved | None = None
    async for event in job.events():
        if isinstance(event, Finished | Failed):
            end = event
        elif isinstance(event, Saved):
            saved = event
    if end is None:    # the desk always ends a job with one; never leave a caller hanging
        end = Failed("The job ended without a result.", "", "execution")
    return end, saved


async def wait_disconnect(http: Request) -> None:
    """Returns when the client hangs up. The body is already read, so the next ASGI message
    is the disconnect."""
    while (await http.receive())["type"] != "http.disconnect":
        pass


# --- the item id in a PNG ----------------------------------------------------------------------


def png_bytes(image: Image.Image, item_id: str | None) -> bytes:
    """The picture as the API sends it: PNG (alpha kept), carrying its library item id."""
    info = PngImagePlugin.PngInfo()
    if item_id:
        info.add_text(ITEM_KEY, item_id)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info, compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def item_id_in(data: bytes) -> str | None:
    """The library item id a PNG we sent carries (read from its header; pixels untouched)."""
    if not data.startswith(b"\x89PNG"):
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            value = image.info.get(ITEM_KEY)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None
    if isinstance(value, str) and 0 < len(value) <= MAX_ITEM_ID_CHARS:
        return value
    return None


async def parent_of(ctx: StudioContext, data: bytes | None, owner: str) -> str | None:
    """The library item a sent picture came from, when it is this owner's (never another's)."""
    if data is None:
        return None
    item_id = item_id_in(data)
    if item_id is None:
        return None
    with contextlib.suppress(Exception):   # a library that cannot answer only loses lineage
        if await ctx.library.get(owner, item_id) is not None:
            return item_id
    return None

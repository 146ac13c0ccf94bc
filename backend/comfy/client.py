"""The async ComfyUI client: every REST route the studio uses, and execute() — submit a graph
and follow it to its result over the shared websocket, recovering from /history when the
socket drops or stalls."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import mimetypes
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from backend.comfy.errors import (
    ComfyError,
    ComfyExecutionFailed,
    ComfyInterrupted,
    ComfyPromptLost,
    ComfyRejected,
    ComfyServerError,
    ComfyTimeout,
    ComfyUnreachable,
)
from backend.comfy.messages import (
    Executed,
    Executing,
    ExecutionCached,
    ExecutionErrorMessage,
    ExecutionInterrupted,
    ExecutionSuccess,
    Message,
)
from backend.comfy.types import (
    ImageRef,
    PromptDone,
    PromptQueued,
    QueueSnapshot,
    Submitted,
    SystemStats,
)
from backend.comfy.websocket import ConnectionChanged, Listener, SocketHub, ws_url_for

log = logging.getLogger(__name__)

_EMPTY = object()   # marks "200 with an empty body" answers


class ComfyClient:
    """One per process. REST over httpx, prompt messages over one shared websocket.

    `stall_poll_s`: with the socket up but silent for this long, ask /history + /queue.
    `down_poll_s`: while the socket is down, ask that often (a restart loses the queue).
    `unreachable_after_s`: give up on a job when ComfyUI cannot be reached for this long.
    """

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str | None = None,
        http_timeout: float = 30.0,
        stall_poll_s: float = 5.0,
        down_poll_s: float = 1.0,
        unreachable_after_s: float = 60.0,
        socket_wait_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id or uuid.uuid4().hex
        self.stall_poll_s = stall_poll_s
        self.down_poll_s = down_poll_s
        self.unreachable_after_s = unreachable_after_s
        self.socket_wait_s = socket_wait_s
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=http_timeout, transport=transport
        )
        self._hub = SocketHub(ws_url_for(self.base_url, self.client_id))
        self._background: set[asyncio.Task[Any]] = set()

    # ---- lifecycle, socket state ----------------------------------------------------------

    @property
    def connected(self) -> bool:
        """The shared websocket is up."""
        return self._hub.connected

    @property
    def queue_remaining(self) -> int | None:
        """ComfyUI's queue length from the last websocket status message."""
        status = self._hub.last_status
        return status.queue_remaining if status else None

    @property
    def watched_prompt_ids(self) -> frozenset[str]:
        """Prompts an execute() is following right now."""
        return self._hub.watched

    def open_socket(self) -> None:
        """Start the shared websocket now (otherwise the first execute() does)."""
        self._hub.start()

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """`listener(StatusMessage | ConnectionChanged)` for every status broadcast and socket
        change (the monitor wants queue_remaining); returns the remover. Opens the socket when
        called inside a running event loop (else call open_socket() later)."""
        remove = self._hub.add_listener(listener)
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop()
            self._hub.start()
        return remove

    async def aclose(self) -> None:
        await self._hub.aclose()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self._http.aclose()

    async def __aenter__(self) -> ComfyClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---- HTTP plumbing ---------------------------------------------------------------------

    async def _request(
        self, method: str, path: str, *, expect: str = "json", **kwargs: Any
    ) -> Any:
        """One request; `expect` is "json", "empty" (ComfyUI's 200-with-no-body routes) or
        "bytes". Transport failures → ComfyUnreachable, bad answers → ComfyServerError."""
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise ComfyUnreachable(self.base_url, "connection refused", str(exc)) from exc
        except httpx.TimeoutException as exc:
            reason = "no connection" if isinstance(exc, httpx.ConnectTimeout) else "no answer"
            raise ComfyUnreachable(self.base_url, f"{reason} within the time limit",
                                   f"{method} {path}: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            raise ComfyUnreachable(self.base_url, f"connection failed: {type(exc).__name__}",
                                   str(exc)) from exc
        if response.status_code == 400 and path == "/prompt":
            body = _json_or(response, None)
            if isinstance(body, Mapping) and ("error" in body or "node_errors" in body):
                raise ComfyRejected.from_body(body)
        if response.status_code != 200:
            raise ComfyServerError(method, path, response.status_code, response.text)
        if expect == "bytes":
            return response.content
        if expect == "empty":
            return None
        body = _json_or(response, _EMPTY)
        if body is _EMPTY:
            raise ComfyServerError(method, path, 200, response.text)
        return body

    # ---- REST routes -----------------------------------------------------------------------

    async def submit(
        self,
        graph: Mapping[str, Any],
        *,
        prompt_id: str | None = None,
        front: bool = False,
        extra_data: Mapping[str, Any] | None = None,
        partial_targets: list[str] | None = None,
    ) -> Submitted:
        """POST /prompt. 400 → ComfyRejected; 200 with node_errors (only some outputs would
        run) → the prompt is cancelled and ComfyRejected raised."""
        prompt_id = prompt_id or str(uuid.uuid4())
        payload: dict[str, Any] = {
            "prompt": dict(graph),
            "client_id": self.client_id,
            "prompt_id": prompt_id,
            "extra_data": {**(extra_data or {}), "client_id": self.client_id},
        }
        if front:
            payload["front"] = True
        if partial_targets:
            payload["partial_execution_targets"] = [str(t) for t in partial_targets]
        body = await self._request("POST", "/prompt", json=payload)
        if not isinstance(body, Mapping):
            raise ComfyServerError("POST", "/prompt", 200, str(body))
        accepted_id = str(body.get("prompt_id") or prompt_id)
        if body.get("node_errors"):
            await self._cancel_quietly(accepted_id)
            raise ComfyRejected.from_body(body, prompt_id=accepted_id)
        number = body.get("number")
        return Submitted(accepted_id, int(number) if isinstance(number, int | float) else 0)

    async def upload_image(
        self, data: bytes, *, suffix: str = ".png", subfolder: str = "banana", kind: str = "input"
    ) -> ImageRef:
        """Upload under a content-hash name: the same bytes always get the same name, so
        overwriting is harmless and users never clobber each other's inputs."""
        name = hashlib.sha256(data).hexdigest()[:24] + suffix
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
        body = await self._request(
            "POST", "/upload/image",
            files={"image": (name, data, mime)},
            data={"type": kind, "subfolder": subfolder, "overwrite": "true"},
        )
        if not isinstance(body, Mapping):
            raise ComfyServerError("POST", "/upload/image", 200, str(body))
        return ImageRef.from_dict({"subfolder": subfolder, "type": kind, **body})

    async def view(self, ref: ImageRef) -> bytes:
        params = {"filename": ref.filename, "subfolder": ref.subfolder, "type": ref.type}
        return await self._request("GET", "/view", params=params, expect="bytes")

    async def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The history entry of one prompt; None while it waits/runs or when unknown."""
        body = await self._request("GET", f"/history/{quote(prompt_id, safe='')}")
        entry = body.get(prompt_id) if isinstance(body, Mapping) else None
        return dict(entry) if isinstance(entry, Mapping) else None

    async def queue(self) -> QueueSnapshot:
        body = await self._request("GET", "/queue")
        return QueueSnapshot.from_body(body if isinstance(body, Mapping) else {})

    async def delete_pending(self, prompt_ids: list[str] | tuple[str, ...]) -> None:
        await self._request("POST", "/queue", json={"delete": list(prompt_ids)}, expect="empty")

    async def interrupt(self, prompt_id: str | None = None) -> None:
        """Interrupt the running prompt; with prompt_id, only if that one is running."""
        payload = {"prompt_id": prompt_id} if prompt_id else {}
        await self._request("POST", "/interrupt", json=payload, expect="empty")

    async def free(self, unload_models: bool = True, free_memory: bool = True) -> None:
        await self._request(
            "POST", "/free", json={"unload_models": unload_models, "free_memory": free_memory},
            expect="empty",
        )

    async def system_stats(self) -> SystemStats:
        body = await self._request("GET", "/system_stats")
        return SystemStats.from_body(body if isinstance(body, Mapping) else {})

    async def object_info(self) -> dict[str, Any]:
        body = await self._request("GET", "/object_info")
        return dict(body) if isinstance(body, Mapping) else {}

    async def models(self, folder: str) -> list[str]:
        """File names in a model folder; [] for a folder this server does not have (404)."""
        try:
            body = await self._request("GET", f"/models/{quote(folder, safe='')}")
        except ComfyServerError as exc:
            if exc.status == 404:
                return []
            raise
        return [str(name) for name in body] if isinstance(body, list) else []

    async def cancel(self, prompt_id: str) -> None:
        """Stop a prompt wherever it is: delete if pending, interrupt if running. Delete goes
        first so a pending prompt cannot start between the two calls; interrupt with a
        prompt_id leaves other prompts alone."""
        await self.delete_pending([prompt_id])
        await self.interrupt(prompt_id)

    async def _cancel_quietly(self, prompt_id: str) -> None:
        try:
            async with asyncio.timeout(5.0):
                await self.cancel(prompt_id)
        except (ComfyError, TimeoutError) as exc:
            log.warning("could not cancel prompt %s: %s", prompt_id, exc)

    # ---- execute ---------------------------------------------------------------------------

    async def execute(
        self,
        graph: Mapping[str, Any],
        *,
        prompt_id: str | None = None,
        extra_data: Mapping[str, Any] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - a job deadline that also cancels it
        partial_targets: list[str] | None = None,
    ) -> AsyncIterator[Message | PromptQueued | PromptDone]:
        """Submit and follow one prompt: PromptQueued, then its messages in order (previews
        included), then PromptDone — or a ComfyError. Closing the iterator early (or
        cancelling the task) cancels the prompt in ComfyUI."""
        prompt_id = prompt_id or str(uuid.uuid4())
        deadline = time.monotonic() + timeout if timeout is not None else None
        self._hub.start()
        await self._hub.wait_first_attempt(self.socket_wait_s)
        # registered before the POST so not even the first message can be missed
        watcher = self._hub.watch(prompt_id)
        queued = finished = False
        try:
            try:
                submitted = await self.submit(
                    graph, prompt_id=prompt_id, extra_data=extra_data,
                    partial_targets=partial_targets,
                )
            except ComfyRejected:
                raise       # nothing queued (submit() cancelled a partly valid one itself)
            except BaseException as exc:
                # Cancelled (Stop, a closed tab) or the answer was lost after the POST went
                # out: ComfyUI may have queued it under our id, so cancel it like any other.
                queued = not _never_sent(exc)
                raise
            queued = True
            position = 0
            with contextlib.suppress(ComfyError):
                position = (await self.queue()).position(prompt_id) or 0
            yield PromptQueued(prompt_id, submitted.number, position)
            outputs: dict[str, dict[str, Any]] = {}
            cached: tuple[str, ...] = ()
            socket_up = self._hub.connected
            unreachable_since: float | None = None
            settled: PromptDone | None = None   # history says done; queued messages go first
            while True:
                if settled is not None and watcher.empty():
                    finished = True
                    yield settled
                    return
                wait = self.stall_poll_s if socket_up else self.down_poll_s
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        raise ComfyTimeout(prompt_id, timeout or 0.0)
                try:
                    async with asyncio.timeout(wait):
                        item = await watcher.get()
                except TimeoutError:
                    item = None
                check = item is None
                if isinstance(item, ConnectionChanged):
                    socket_up = item.connected
                    check = item.connected   # back up: what happened while we were away?
                elif isinstance(item, Executed):
                    outputs[item.node] = dict(item.output)
                elif isinstance(item, ExecutionCached):
                    cached = item.nodes
                elif isinstance(item, ExecutionErrorMessage):
                    finished = True
                    raise ComfyExecutionFailed(
                        item.node_id, item.node_type, item.exception_type,
                        item.exception_message, prompt_id=prompt_id, traceback=item.traceback,
                    )
                elif isinstance(item, ExecutionInterrupted):
                    finished = True
                    raise ComfyInterrupted(prompt_id, item.node_id, item.node_type)
                elif isinstance(item, Executing) and item.node is None:
                    check = True     # finished without a terminal message we saw
                if item is not None and not isinstance(item, ConnectionChanged):
                    yield item
                    if isinstance(item, ExecutionSuccess):
                        finished = True
                        yield PromptDone(prompt_id, outputs, cached, recovered=False)
                        return
                if not check:
                    continue
                try:
                    done = await self._check_server(prompt_id)
                    unreachable_since = None
                except (ComfyUnreachable, ComfyServerError) as exc:
                    now = time.monotonic()
                    unreachable_since = unreachable_since or now
                    if now - unreachable_since >= self.unreachable_after_s:
                        raise
                    log.info("prompt %s: cannot check ComfyUI yet (%s)", prompt_id, exc)
                    continue
                except (ComfyExecutionFailed, ComfyInterrupted, ComfyPromptLost):
                    finished = True
                    raise
                settled = done
        finally:
            self._hub.unwatch(prompt_id)
            if queued and not finished:
                await self._cancel_in_background(prompt_id)

    async def _cancel_in_background(self, prompt_id: str) -> None:
        # shielded: a cancelled job must still be cancelled in ComfyUI
        task = asyncio.get_running_loop().create_task(self._cancel_quietly(prompt_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)

    async def _check_server(self, prompt_id: str) -> PromptDone | None:
        """Where is this prompt? Done → PromptDone(recovered=True); failed → raises; still
        waiting or running → None; nowhere (ComfyUI restarted) → ComfyPromptLost."""
        for attempt in range(2):
            entry = await self.history(prompt_id)
            if entry is not None:
                return _result_from_history(prompt_id, entry)
            if attempt == 0:
                snapshot = await self.queue()
                if snapshot.is_running(prompt_id) or snapshot.is_pending(prompt_id):
                    return None
            # not queued: it may have finished between the two calls, so ask history again
        raise ComfyPromptLost(prompt_id)


def _result_from_history(prompt_id: str, entry: Mapping[str, Any]) -> PromptDone | None:
    status = entry.get("status") if isinstance(entry.get("status"), Mapping) else {}
    messages = status.get("messages") if isinstance(status.get("messages"), list) else []
    cached: tuple[str, ...] = ()
    for message in messages:
        if not (isinstance(message, list | tuple) and len(message) == 2):
            continue
        kind, data = message
        data = data if isinstance(data, Mapping) else {}
        if kind == "execution_error":
            raise ComfyExecutionFailed.from_data({"prompt_id": prompt_id, **data})
        if kind == "execution_interrupted":
            raise ComfyInterrupted(prompt_id, data.get("node_id"), data.get("node_type"))
        if kind == "execution_cached" and isinstance(data.get("nodes"), list):
            cached = tuple(str(n) for n in data["nodes"])
    outputs = entry.get("outputs") if isinstance(entry.get("outputs"), Mapping) else {}
    if status.get("completed") is True or status.get("status_str") == "success" or not status:
        return PromptDone(
            prompt_id, {str(k): dict(v) for k, v in outputs.items() if isinstance(v, Mapping)},
            cached, recovered=True,
        )
    if status.get("status_str") == "error":
        raise ComfyExecutionFailed(None, None, "", "ComfyUI recorded an error for this job "
                                   "without details", prompt_id=prompt_id)
    return None


def _json_or(response: httpx.Response, default: Any) -> Any:
    if not response.content:
        return default
    try:
        return response.json()
    except ValueError:
        return default


def _never_sent(exc: BaseException) -> bool:
    """True when a request failed before reaching ComfyUI (no connection was made)."""
    return isinstance(exc, ComfyUnreachable) and isinstance(
        exc.__cause__, httpx.ConnectError | httpx.ConnectTimeout
    )

"""The async ComfyUI client: every REST route the studio uses, and execute() — submit a graph
and follow it to its result over the client's websocket, recovering from /history when the
socket drops or stalls, and giving up within seconds when ComfyUI itself is gone."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import mimetypes
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
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
from backend.comfy.jsonish import as_list, as_mapping
from backend.comfy.messages import (
    Executed,
    Executing,
    ExecutionCached,
    ExecutionErrorMessage,
    ExecutionInterrupted,
    ExecutionSuccess,
    Message,
    StatusMessage,
)
from backend.comfy.types import (
    STUDIO_MARK,
    ImageRef,
    PromptDone,
    PromptQueued,
    QueueSnapshot,
    Submitted,
    SystemStats,
)
from backend.comfy.websocket import (
    PING_INTERVAL_S,
    PING_TIMEOUT_S,
    ConnectionChanged,
    Listener,
    SocketHub,
    ws_url_for,
)

log = logging.getLogger(__name__)

_EMPTY = object()   # marks "200 with an empty body" answers
# With the socket down (or just replaced) a job asks /history this soon, then backs off to
# down_poll_s: a short job is not held up by the poll interval.
FIRST_DOWN_POLL_S = 0.1
# Transport failures that mean nothing listens at the address (down), not "slow to answer".
_REFUSED = (httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


class ComfyClient:
    """One per ComfyUI server (nothing here is process-wide: several clients for several
    servers each have their own HTTP pool, websocket and listeners). REST over httpx, prompt
    messages over the client's websocket.

    `stall_poll_s`: with the socket up but silent for this long, ask /history + /queue.
    `down_poll_s`: while the socket is down, ask at most this far apart (the first asks come
    sooner: FIRST_DOWN_POLL_S, doubling); a restart loses the queue.
    `dead_after_s`: with the socket down, ComfyUI refusing (or resetting) connections for this
    long ends a job with ComfyUnreachable — it was killed, not slow.
    `unreachable_after_s`: give up on a job when ComfyUI cannot be reached for this long
    (timeouts, 5xx: a server that may still be working).
    `ping_interval_s`, `ping_timeout_s`: the socket is pinged that often; no pong (or no
    greeting on a new socket) within the timeout → it is stale and replaced.
    `studio_id`: marks every prompt as this studio's (`extra_data["banana_studio"]`), so a
    restarted studio can remove what a killed one left (backend/comfy/orphans.py).
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
        dead_after_s: float = 2.0,
        ping_interval_s: float = PING_INTERVAL_S,
        ping_timeout_s: float = PING_TIMEOUT_S,
        studio_id: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id or uuid.uuid4().hex
        self.studio_id = studio_id
        # This client instance: a prompt marked with our studio id but another session was
        # left by an earlier process (or another client) of the same studio.
        self.session_id = uuid.uuid4().hex
        self.stall_poll_s = stall_poll_s
        self.down_poll_s = down_poll_s
        self.dead_after_s = dead_after_s
        self.unreachable_after_s = unreachable_after_s
        self.socket_wait_s = socket_wait_s
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=http_timeout, transport=transport
        )
        self._hub = SocketHub(
            ws_url_for(self.base_url, self.client_id),
            ping_interval_s=ping_interval_s, ping_timeout_s=ping_timeout_s,
        )
        self._hub.add_listener(self._on_socket_change)
        self._background: set[asyncio.Task[bool]] = set()
        self._restart_checks: set[asyncio.Task[object]] = set()
        self._server_generation = 0
        # A prompt of ours ComfyUI had finished (in its history), and the server generation
        # then: after a reconnect, its absence from /history means ComfyUI restarted.
        self._anchor: tuple[str, int] | None = None
        # Prompts this client gave up on but could not cancel (ComfyUI did not answer): they
        # are cancelled when it answers again, so a job moved to another server never runs
        # twice (the studio never reads their results either).
        self._abandoned: set[str] = set()

    # ---- lifecycle, socket state ----------------------------------------------------------

    @property
    def connected(self) -> bool:
        """This client's websocket is up (open and greeted by ComfyUI)."""
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

    @property
    def abandoned_prompt_ids(self) -> frozenset[str]:
        """Prompts given up on whose cancel has not reached ComfyUI yet."""
        return frozenset(self._abandoned)

    @property
    def epoch(self) -> int:
        """How many times the websocket came up (1 after the first connect); it grows on
        every reconnect. What the studio saw before a bump may be stale."""
        return self._hub.epoch

    @property
    def server_generation(self) -> int:
        """Grows each time the client learns that ComfyUI restarted (a prompt of ours vanished
        from its queue and history, or a finished one from its history after a reconnect):
        whatever the studio believed loaded in ComfyUI is gone. Clearing ComfyUI's history by
        hand reads as a restart too (harmless: the studio just forgets)."""
        return self._server_generation

    @property
    def stale_sockets_replaced(self) -> int:
        """Sockets dropped and replaced because they stayed silent (no greeting or pong)."""
        return self._hub.stale_replaced

    @property
    def ping_interval_s(self) -> float:
        return self._hub.ping_interval_s

    @ping_interval_s.setter
    def ping_interval_s(self, value: float) -> None:
        self._hub.ping_interval_s = value

    @property
    def ping_timeout_s(self) -> float:
        return self._hub.ping_timeout_s

    @ping_timeout_s.setter
    def ping_timeout_s(self, value: float) -> None:
        self._hub.ping_timeout_s = value

    async def wait_connected(self, within_s: float) -> bool:
        """Wait up to `within_s` for the websocket to be up (it does not open it)."""
        return await self._hub.wait_connected(within_s)

    def open_socket(self) -> None:
        """Start this client's websocket now (otherwise the first execute() does)."""
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
        for check in list(self._restart_checks):
            check.cancel()
        await self._hub.aclose()
        if self._restart_checks:
            await asyncio.gather(*self._restart_checks, return_exceptions=True)
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
            raise ComfyUnreachable(self.base_url, "connection refused", str(exc),
                                   refused=True) from exc
        except httpx.TimeoutException as exc:
            reason = "no connection" if isinstance(exc, httpx.ConnectTimeout) else "no answer"
            raise ComfyUnreachable(self.base_url, f"{reason} within the time limit",
                                   f"{method} {path}: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            raise ComfyUnreachable(self.base_url, f"connection failed: {type(exc).__name__}",
                                   str(exc), refused=isinstance(exc, _REFUSED)) from exc
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
        extra: dict[str, Any] = {**(extra_data or {}), "client_id": self.client_id}
        if self.studio_id is not None:
            extra[STUDIO_MARK] = {"studio": self.studio_id, "session": self.session_id}
        payload: dict[str, Any] = {
            "prompt": dict(graph),
            "client_id": self.client_id,
            "prompt_id": prompt_id,
            "extra_data": extra,
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
        data = await self._request("GET", "/view", params=params, expect="bytes")
        assert isinstance(data, bytes)
        return data

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

    async def _cancel_quietly(self, prompt_id: str) -> bool:
        """Cancel, never raising; a prompt ComfyUI could not be told about is remembered and
        cancelled when it answers again (cancel_abandoned). True when ComfyUI was told."""
        try:
            async with asyncio.timeout(5.0):
                await self.cancel(prompt_id)
        except (ComfyUnreachable, TimeoutError) as exc:
            # Gone or silent: if it comes back with the prompt, it must not run it for nobody.
            self._abandoned.add(prompt_id)
            log.info("could not cancel prompt %s yet (%s): will when ComfyUI answers",
                     prompt_id, exc)
            return False
        except ComfyError as exc:
            log.warning("could not cancel prompt %s: %s", prompt_id, exc)
            return False
        self._abandoned.discard(prompt_id)
        return True

    async def cancel_abandoned(self) -> int:
        """Cancel the prompts given up on while ComfyUI did not answer (delete if waiting,
        interrupt if running); returns how many it reached. Called on every reconnect."""
        reached = 0
        for prompt_id in list(self._abandoned):
            if await self._cancel_quietly(prompt_id):
                reached += 1
                log.warning("cancelled prompt %s that was given up on while ComfyUI did not "
                            "answer", prompt_id)
        return reached

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
            generation = self._server_generation
            position = 0
            with contextlib.suppress(ComfyError):
                position = (await self.queue()).position(prompt_id) or 0
            yield PromptQueued(prompt_id, submitted.number, position)
            outputs: dict[str, dict[str, Any]] = {}
            cached: tuple[str, ...] = ()
            socket_up = self._hub.connected
            down_wait = FIRST_DOWN_POLL_S
            unreachable_since: float | None = None
            refused_since: float | None = None    # socket down and connections refused
            settled: PromptDone | None = None   # history says done; queued messages go first
            while True:
                if settled is not None and watcher.empty():
                    finished = True
                    self._anchor = (prompt_id, generation)
                    yield settled
                    return
                if socket_up:
                    wait = self.stall_poll_s
                else:
                    wait = min(down_wait, self.down_poll_s)
                    down_wait = wait * 2
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
                    # Up again: what happened while we were away? Down: is ComfyUI gone too?
                    socket_up, check, down_wait = item.connected, True, FIRST_DOWN_POLL_S
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
                        self._anchor = (prompt_id, generation)
                        yield PromptDone(prompt_id, outputs, cached, recovered=False)
                        return
                if not check:
                    continue
                try:
                    done = await self._check_server(prompt_id)
                    unreachable_since = refused_since = None
                except (ComfyUnreachable, ComfyServerError) as exc:
                    now = time.monotonic()
                    unreachable_since = unreachable_since or now
                    if not socket_up and isinstance(exc, ComfyUnreachable) and exc.refused:
                        # The socket dropped and nothing listens any more: ComfyUI was
                        # killed. Twice over dead_after_s, so a quick restart is still
                        # told apart (it answers: the prompt is lost).
                        refused_since = refused_since or now
                        if now - refused_since >= self.dead_after_s:
                            raise
                    else:
                        refused_since = None
                    if now - unreachable_since >= self.unreachable_after_s:
                        raise
                    log.info("prompt %s: cannot check ComfyUI yet (%s)", prompt_id, exc)
                    continue
                except ComfyPromptLost as exc:
                    finished = True
                    self._note_restart(generation, str(exc.detail))
                    raise
                except (ComfyExecutionFailed, ComfyInterrupted):
                    finished = True
                    raise
                if done is not None and item is None and socket_up:
                    # Done, and the open socket never said so: it may be stale.
                    self._hub.probe()
                settled = done
        finally:
            self._hub.unwatch(prompt_id)
            if queued and not finished:
                await self._cancel_in_background(prompt_id)

    # ---- restarts ----------------------------------------------------------------------------

    def _note_restart(self, seen_generation: int, why: str) -> None:
        """Count one restart, once: several jobs (and the reconnect check) may notice it."""
        if self._server_generation != seen_generation:
            return
        self._server_generation += 1
        self._anchor = None
        log.warning("ComfyUI at %s restarted (%s); what it had loaded is gone", self.base_url,
                    why)

    def _on_socket_change(self, item: StatusMessage | ConnectionChanged) -> None:
        if not (isinstance(item, ConnectionChanged) and item.connected):
            return
        if self._abandoned:
            self._in_background(self.cancel_abandoned())
        if self._anchor and self._hub.epoch >= 2:
            self._in_background(self._check_restart(self._anchor))

    def _in_background(self, work: Coroutine[Any, Any, object]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._restart_checks.add(task)
        task.add_done_callback(self._restart_checks.discard)

    async def _check_restart(self, anchor: tuple[str, int]) -> None:
        """After a reconnect: is a prompt ComfyUI had finished still in its history?"""
        prompt_id, generation = anchor
        try:
            async with asyncio.timeout(10.0):
                entry = await self.history(prompt_id)
        except (ComfyError, TimeoutError) as exc:
            log.debug("restart check after reconnect failed: %s", exc)
            return
        if entry is None:
            self._note_restart(generation, f"prompt {prompt_id} is no longer in its history")

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
    status = as_mapping(entry.get("status"))
    cached: tuple[str, ...] = ()
    for message in as_list(status.get("messages")):
        if not (isinstance(message, list | tuple) and len(message) == 2):
            continue
        kind, raw_data = message
        data = as_mapping(raw_data)
        if kind == "execution_error":
            raise ComfyExecutionFailed.from_data({"prompt_id": prompt_id, **data})
        if kind == "execution_interrupted":
            raise ComfyInterrupted(prompt_id, data.get("node_id"), data.get("node_type"))
        if kind == "execution_cached" and isinstance(data.get("nodes"), list):
            cached = tuple(str(n) for n in data["nodes"])
    outputs = as_mapping(entry.get("outputs"))
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

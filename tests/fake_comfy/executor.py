"""The prompt queue and the worker that runs one prompt at a time, like ComfyUI's main loop.

Message order per prompt (see the README and the recorded traces): execution_start,
execution_cached, then per node progress_state → executing → (progress…) → (executed) →
progress_state, then execution_success | execution_error | execution_interrupted, then
status, then executing{node: null}.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from backend.comfy.validation import full_type_name

from .context import Interrupted, NodeContext, ProgressRegistry
from .faults import OOM_TIPS, OOM_TYPE, Faults
from .graph import ExecutionList, cache_keys, is_link
from .nodes import REGISTRY, NodeFailure, NodeOutput
from .placeholder import placeholder_output
from .state import Config, Counters, History, Memory
from .ws import Hub

log = logging.getLogger(__name__)
SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")


@dataclass
class QueueItem:
    number: float
    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    outputs: list[str]
    sensitive: dict[str, Any] = field(default_factory=dict)

    def as_list(self) -> list[Any]:
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


@dataclass
class CacheEntry:
    values: tuple[Any, ...]
    ui: dict[str, Any] | None    # {"meta": ..., "output": ...} for nodes that showed something


class PromptQueue:
    """Pending prompts sorted by `number` (front=true gives negative numbers), plus flags."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.pending: list[QueueItem] = []
        self.running: QueueItem | None = None
        self.flags: dict[str, Any] = {}
        self.number = 0
        self._wake = asyncio.Event()

    def remaining(self) -> int:
        return len(self.pending) + (1 if self.running else 0)

    def put(self, item: QueueItem) -> None:
        self.pending.append(item)
        self.pending.sort(key=lambda i: (i.number, i.prompt_id))
        self.hub.emit_status()
        self._wake.set()

    async def get(self) -> QueueItem | None:
        """The next prompt, or None when woken only to handle flags."""
        while not self.pending and not self.flags:
            self._wake.clear()
            await self._wake.wait()
        if not self.pending:
            return None
        self.running = self.pending.pop(0)
        self.hub.emit_status()
        return self.running

    def done(self) -> None:
        self.running = None
        self.hub.emit_status()

    def delete(self, prompt_id: str) -> bool:
        for item in self.pending:
            if item.prompt_id == prompt_id:
                self.pending.remove(item)
                self.hub.emit_status()
                return True
        return False

    def wipe(self) -> None:
        self.pending.clear()
        self.hub.emit_status()

    def set_flag(self, name: str, value: Any) -> None:
        self.flags[name] = value
        self._wake.set()

    def take_flags(self) -> dict[str, Any]:
        flags, self.flags = self.flags, {}
        return flags


class _Failed(Exception):
    def __init__(self, details: dict[str, Any], interrupted: bool) -> None:
        super().__init__(details.get("exception_message", "interrupted"))
        self.details = details
        self.interrupted = interrupted


class Executor:
    def __init__(self, config: Config, counters: Counters, faults: Faults, hub: Hub,
                 memory: Memory, history: History, object_info: Any) -> None:
        self.config = config
        self.counters = counters
        self.faults = faults
        self.hub = hub
        self.memory = memory
        self.history = history
        self.object_info = object_info        # callable → the current /object_info
        self.queue = PromptQueue(hub)
        self.cache: dict[str, CacheEntry] = {}
        self.interrupt_requested = False
        self.interrupt_event = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()

    async def run_forever(self) -> None:
        while True:
            item = await self.queue.get()
            if item is not None:
                self.idle.clear()
                try:
                    await self._run(item)
                except Exception:
                    # A bug in the fake must not stop the queue: drop the prompt, keep going.
                    log.exception("fake executor failed on prompt %s", item.prompt_id)
                    self.queue.done()
                finally:
                    if not self.queue.pending:
                        self.idle.set()
            flags = self.queue.take_flags()
            free_memory = flags.get("free_memory", False)
            if flags.get("unload_models", free_memory):
                self.memory.unload_all()
            if free_memory:
                self.cache.clear()

    def interrupt(self, prompt_id: str | None = None) -> bool:
        running = self.queue.running
        if prompt_id and (running is None or running.prompt_id != prompt_id):
            return False
        self.interrupt_requested = True
        self.interrupt_event.set()
        return True

    # --- one prompt ----------------------------------------------------------------------

    async def _run(self, item: QueueItem) -> None:
        self.interrupt_requested = False          # an interrupt while idle is forgotten
        self.interrupt_event.clear()
        run = _PromptRun(self, item)
        success = await run.execute()
        self.counters.add("prompts_executed")
        self.history.add(item.prompt_id, {
            "prompt": item.as_list(),
            "outputs": {n: ui["output"] for n, ui in run.ui_outputs.items()},
            "status": {"status_str": "success" if success else "error", "completed": success,
                       "messages": run.messages},
            "meta": {n: ui["meta"] for n, ui in run.ui_outputs.items()},
        })
        self.queue.done()
        if run.client_id is not None:
            self.hub.emit("executing", {"node": None, "prompt_id": item.prompt_id}, run.client_id)


class _PromptRun:
    def __init__(self, executor: Executor, item: QueueItem) -> None:
        self.ex = executor
        self.item = item
        self.prompt = item.prompt
        self.prompt_id = item.prompt_id
        self.client_id: str | None = item.extra_data.get("client_id")
        self.messages: list[list[Any]] = []
        self.ui_outputs: dict[str, dict[str, Any]] = {}
        self.executed: list[str] = []
        self.schemas = executor.object_info()
        self.progress = ProgressRegistry(executor.hub, self.prompt_id, self.client_id)
        self._unique = 0

    def add_message(self, event: str, data: dict[str, Any], broadcast: bool) -> None:
        data = {**data, "timestamp": int(time.time() * 1000)}
        self.messages.append([event, data])
        if self.client_id is not None or broadcast:
            self.ex.hub.emit(event, data, self.client_id)

    def _changed(self, node_id: str, inputs: dict[str, Any]) -> Any:
        """IS_CHANGED: a file's hash for loaders of input files; SaveImageWebsocket always."""
        class_type = self.prompt[node_id].get("class_type")
        if class_type in ("LoadImage", "LoadImageMask") and isinstance(inputs.get("image"), str):
            path = self.ex.config.input_dir / inputs["image"].removesuffix(" [input]")
            return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        if class_type == "SaveImageWebsocket":
            self._unique += 1
            return (time.time(), self._unique)
        return None

    def _is_output(self, node_id: str) -> bool:
        schema = self.schemas.get(self.prompt[node_id]["class_type"], {})
        return schema.get("output_node") is True

    async def execute(self) -> bool:
        hub = self.ex.hub
        hub.client_id = self.client_id
        self.add_message("execution_start", {"prompt_id": self.prompt_id}, broadcast=False)
        keys = cache_keys(self.prompt, self._changed)
        used = set(keys.values())
        for key in [k for k in self.ex.cache if k not in used]:
            del self.ex.cache[key]
        cached = [n for n in self.prompt if keys[n] in self.ex.cache]
        self.add_message("execution_cached", {"nodes": cached, "prompt_id": self.prompt_id},
                         broadcast=False)
        order = ExecutionList(self.prompt, lambda n: keys.get(n) in self.ex.cache, self._is_output)
        for node_id in self.item.outputs:
            order.add_node(node_id)
        try:
            while not order.is_empty():
                node_id = order.next_node()
                await self._execute_node(node_id, keys)
                order.complete(node_id)
        except _Failed as failure:
            self._report(failure)
            return False
        finally:
            hub.last_node_id = None
        self.add_message("execution_success", {"prompt_id": self.prompt_id}, broadcast=False)
        return True

    async def _execute_node(self, node_id: str, keys: dict[str, str]) -> None:
        hub = self.ex.hub
        node = self.prompt[node_id]
        class_type = node["class_type"]
        entry = self.ex.cache.get(keys[node_id])
        if entry is not None:
            if self.client_id is not None:
                output = (entry.ui or {}).get("output")
                hub.emit("executed", {"node": node_id, "display_node": node_id, "output": output,
                                      "prompt_id": self.prompt_id}, self.client_id)
                if entry.ui is not None:
                    self.ui_outputs[node_id] = entry.ui
            self.progress.finish(node_id)
            return

        self.progress.start(node_id)
        if self.client_id is not None:
            hub.last_node_id = node_id
            hub.emit("executing", {"node": node_id, "display_node": node_id,
                                   "prompt_id": self.prompt_id}, self.client_id)
        inputs: dict[str, Any] = {}
        try:
            if self.ex.interrupt_requested:
                raise Interrupted()
            inputs = self._inputs(node_id, keys)
            fault = self.ex.faults.take_node_fault(node_id, class_type)
            if fault is not None:
                raise NodeFailure(fault.exception_type, fault.message)
            if self.ex.config.node_delay > 0:
                # A slow node that, like a sampler, notices an interrupt and ends early; the
                # interrupt itself is raised at the next node, as in the recorded trace.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.ex.interrupt_event.wait(),
                                           self.ex.config.node_delay)
            ctx = NodeContext(
                prompt_id=self.prompt_id, node_id=node_id, class_type=class_type,
                config=self.ex.config, hub=hub, memory=self.ex.memory, faults=self.ex.faults,
                progress_state=self.progress, interrupted=lambda: self.ex.interrupt_requested,
                prompt=self.prompt, extra_data=self.item.extra_data)
            impl = REGISTRY.impls.get(class_type)
            return_types = list(self.schemas.get(class_type, {}).get("output", []))
            if impl is None:
                result = placeholder_output(return_types, inputs, class_type, node_id)
            else:
                result = await impl(ctx, inputs)
            values = _complete(result, return_types, inputs, class_type, node_id)
        except Interrupted:
            raise _Failed({"node_id": node_id}, interrupted=True) from None
        except Exception as ex:  # noqa: BLE001 - every node failure becomes execution_error
            raise _Failed(self._error_details(node_id, ex, inputs), interrupted=False) from ex

        ui = None
        if result.ui:
            ui = {"meta": {"node_id": node_id, "display_node": node_id, "parent_node": None,
                           "real_node_id": node_id},
                  "output": result.ui}
            self.ui_outputs[node_id] = ui
            if self.client_id is not None:
                hub.emit("executed", {"node": node_id, "display_node": node_id,
                                      "output": result.ui, "prompt_id": self.prompt_id},
                         self.client_id)
        self.ex.cache[keys[node_id]] = CacheEntry(values, ui)
        self.executed.append(node_id)
        self.progress.finish(node_id)

    def _inputs(self, node_id: str, keys: dict[str, str]) -> dict[str, Any]:
        """Declared inputs with links resolved and widgets converted as validation did."""
        node_inputs = self.prompt[node_id].get("inputs", {}) or {}
        schema = self.schemas.get(self.prompt[node_id]["class_type"], {}).get("input", {})
        inputs: dict[str, Any] = {}
        for category in ("required", "optional"):
            for name, spec in (schema.get(category) or {}).items():
                if name not in node_inputs:
                    continue
                value = node_inputs[name]
                if is_link(value):
                    inputs[name] = self.ex.cache[keys[value[0]]].values[value[1]]
                    continue
                if isinstance(value, dict) and "__value__" in value:
                    value = value["__value__"]
                kind = spec[0] if isinstance(spec, list) and spec else None
                convert = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}.get(
                    kind if isinstance(kind, str) else "")
                inputs[name] = convert(value) if convert else value
        return inputs

    def _error_details(self, node_id: str, ex: Exception, inputs: dict[str, Any]
                       ) -> dict[str, Any]:
        if isinstance(ex, NodeFailure):
            exception_type, message = ex.exception_type, ex.message
        else:
            log.exception("fake node %s (%s) raised", node_id, self.prompt[node_id]["class_type"])
            exception_type, message = full_type_name(type(ex)), str(ex)
        tips = ""
        if exception_type == OOM_TYPE:
            tips = OOM_TIPS
            self.ex.memory.unload_all()       # "Got an OOM, unloading all loaded models."
        return {
            "node_id": node_id,
            "exception_message": f"{message}\n{tips}",
            "exception_type": exception_type,
            "traceback": [line for line in traceback.format_tb(ex.__traceback__)][-3:],
            "current_inputs": {k: [_format_value(v)] for k, v in inputs.items()},
        }

    def _report(self, failure: _Failed) -> None:
        node_id = failure.details["node_id"]
        base = {"prompt_id": self.prompt_id, "node_id": node_id,
                "node_type": self.prompt[node_id]["class_type"], "executed": list(self.executed)}
        if failure.interrupted:
            self.add_message("execution_interrupted", base, broadcast=True)
            return
        self.add_message("execution_error", {
            **base,
            "exception_message": failure.details["exception_message"],
            "exception_type": failure.details["exception_type"],
            "traceback": failure.details["traceback"],
            "current_inputs": failure.details["current_inputs"],
            "current_outputs": list(self.prompt),
        }, broadcast=False)


def _complete(result: NodeOutput, return_types: list[Any], inputs: dict[str, Any],
              class_type: str, node_id: str) -> tuple[Any, ...]:
    """A node may return fewer values than it declares; fill the rest with placeholders."""
    values = tuple(result.values)
    if len(values) < len(return_types):
        filler = placeholder_output(return_types, inputs, class_type, node_id).values
        values = values + tuple(filler[len(values):])
    return values


def _format_value(value: Any) -> Any:
    if value is None or isinstance(value, int | float | bool | str):
        return value
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"tensor(shape={list(shape)}, dtype={getattr(value, 'dtype', '?')})"
    return str(value)[:200]

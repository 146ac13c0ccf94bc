"""What a node sees while it runs (the `ExecContext` of nodes/base.py), and progress_state."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from .faults import OOM_TYPE, Faults
from .nodes.base import NodeFailure
from .nodes.models import empty_file_failure
from .state import Config, Memory
from .ws import Hub

log = logging.getLogger(__name__)


class Interrupted(Exception):
    """Raised at the next check after POST /interrupt (ComfyUI's InterruptProcessingException)."""


class ProgressRegistry:
    """ComfyUI's per-prompt progress registry: every change sends the whole `progress_state`."""

    def __init__(self, hub: Hub, prompt_id: str, client_id: str | None) -> None:
        self.hub = hub
        self.prompt_id = prompt_id
        self.client_id = client_id
        self.nodes: dict[str, dict[str, Any]] = {}

    def _entry(self, node_id: str) -> dict[str, Any]:
        return self.nodes.setdefault(node_id, {"state": "pending", "value": 0, "max": 1})

    def start(self, node_id: str) -> None:
        self.nodes[node_id] = {"state": "running", "value": 0.0, "max": 1.0}
        self._send()

    def update(self, node_id: str, value: float, maximum: float) -> None:
        entry = self._entry(node_id)
        entry.update(state="running", value=value, max=maximum)
        self._send()

    def finish(self, node_id: str) -> None:
        entry = self._entry(node_id)
        entry.update(state="finished", value=entry["max"])
        self._send()

    def _send(self) -> None:
        nodes = {
            node_id: {
                "value": e["value"], "max": e["max"], "state": e["state"], "node_id": node_id,
                "prompt_id": self.prompt_id, "display_node_id": node_id, "parent_node_id": None,
                "real_node_id": node_id,
            }
            for node_id, e in self.nodes.items() if e["state"] != "pending"
        }
        self.hub.emit("progress_state", {"prompt_id": self.prompt_id, "nodes": nodes},
                      self.client_id)


class NodeContext:
    """The executor's ExecContext for one node call."""

    def __init__(
        self,
        *,
        prompt_id: str,
        node_id: str,
        class_type: str,
        config: Config,
        hub: Hub,
        memory: Memory,
        faults: Faults,
        progress_state: ProgressRegistry,
        interrupted: Callable[[], bool],
        prompt: dict[str, Any],
        extra_data: dict[str, Any],
    ) -> None:
        self.prompt_id = prompt_id
        self.node_id = node_id
        self.class_type = class_type
        self.input_dir: Path = config.input_dir
        self.output_dir: Path = config.output_dir
        self.temp_dir: Path = config.temp_dir
        self.step_delay = config.step_delay
        self.previews = config.preview_method != "none"
        self.prompt = prompt                # hidden inputs PROMPT / EXTRA_PNGINFO
        self.extra_data = extra_data
        self._config = config
        self._hub = hub
        self._memory = memory
        self._faults = faults
        self._progress = progress_state
        self._interrupted = interrupted

    @property
    def client_id(self) -> str | None:
        return self._progress.client_id

    def check_interrupt(self) -> None:
        if self._interrupted():
            raise Interrupted()

    async def progress(self, value: int, maximum: int, preview: Image.Image | None = None,
                       *, preview_format: str = "JPEG", max_size: int | None = 512) -> None:
        """ComfyUI's progress hook: interrupt check, progress_state (+ type 4 preview for
        clients that announced supports_preview_metadata), progress, type 1 preview otherwise."""
        self.check_interrupt()
        value = min(value, maximum)
        self._progress.update(self.node_id, value, maximum)
        sid = self.client_id
        with_metadata = self._hub.supports(sid, "supports_preview_metadata")
        if preview is not None and with_metadata:
            self._hub.emit_preview(preview, sid, fmt=preview_format, max_size=max_size, metadata={
                "node_id": self.node_id, "prompt_id": self.prompt_id,
                "display_node_id": self.node_id, "parent_node_id": None,
                "real_node_id": self.node_id})
        self._hub.emit("progress", {"value": value, "max": maximum, "prompt_id": self.prompt_id,
                                    "node": self.node_id}, sid)
        if preview is not None and not with_metadata:
            self._hub.emit_preview(preview, sid, fmt=preview_format, max_size=max_size)
        # The configured per-step time (read live: /__fake__/delays may change it); at least a
        # yield so HTTP (e.g. /interrupt) gets in between steps.
        await asyncio.sleep(max(0.0, self._config.step_delay))

    async def load_model(self, folder: str, name: str, vram_gb: float) -> None:
        fault = self._faults.take_node_fault(name, folder)
        if fault is not None:
            raise NodeFailure(fault.exception_type, fault.message)
        if name in self._config.empty_files:
            raise empty_file_failure(name)
        if self._memory.is_resident(folder, name):
            self._memory.touch(folder, name)
            return
        if vram_gb > self._memory.available_gb():
            held = self._memory.baseline_gb + self._memory.models_gb()    # torch's, not the tenant's
            raise NodeFailure(OOM_TYPE, _oom_message(vram_gb, held, self._config.vram_total_gb))
        if self._config.load_delay > 0:
            await asyncio.sleep(self._config.load_delay)
        self._memory.admit(folder, name, vram_gb)
        log.debug("loaded %s/%s (%.2f GB)", folder, name, vram_gb)

    def model_files(self, folder: str) -> list[str]:
        return list(self._config.models.get(folder, []))


def _oom_message(requested_gb: float, used_gb: float, total_gb: float) -> str:
    return (
        "Allocation on device 0 would exceed allowed memory. (out of memory)\n"
        f"Currently allocated     : {used_gb:.2f} GiB\n"
        f"Requested               : {requested_gb:.2f} GiB\n"
        f"Device limit            : {total_gb:.2f} GiB\n"
        "Free (according to CUDA): 0 bytes\n"
        "PyTorch limit (set by user-supplied memory fraction)\n"
        "                        : 17179869184.00 GiB"
    )

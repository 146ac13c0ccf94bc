"""Small immutable values the ComfyUI client hands out (REST answers and execute() results).

Parsers here are tolerant: a field a newer ComfyUI adds is ignored, a field it drops becomes
a default, so the studio keeps working across server versions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from backend.comfy.jsonish import as_list, as_mapping


@dataclass(frozen=True)
class ImageRef:
    """Where ComfyUI keeps a file: what /view and LoadImage need."""

    filename: str
    subfolder: str = ""
    type: str = "output"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageRef:
        # /upload/image answers with "name", outputs and messages with "filename"
        name = data.get("filename", data.get("name", ""))
        return cls(
            filename=str(name),
            subfolder=str(data.get("subfolder") or ""),
            type=str(data.get("type") or "output"),
        )

    @property
    def load_name(self) -> str:
        """The value LoadImage's `image` input expects for an input file."""
        return f"{self.subfolder}/{self.filename}" if self.subfolder else self.filename


def images_in(output: Mapping[str, Any]) -> list[ImageRef]:
    """Image refs of one node's `ui` output ({"images": [...]}); other keys are ignored."""
    found = output.get("images") if isinstance(output, Mapping) else None
    if not isinstance(found, list):
        return []
    return [ImageRef.from_dict(item) for item in found if isinstance(item, Mapping)]


@dataclass(frozen=True)
class Submitted:
    prompt_id: str
    number: int


# The key under which the studio marks its prompts in `extra_data` (ComfyUI keeps extra_data
# in /queue and /history items): {"studio": <studio id>, "session": <one ComfyClient's id>}.
STUDIO_MARK = "banana_studio"


@dataclass(frozen=True)
class QueueItem:
    number: float          # a sort key: negative for front=True submissions
    prompt_id: str
    client_id: str | None = None
    outputs_to_execute: tuple[str, ...] = ()
    studio_id: str | None = None        # from the studio's mark; None for others' prompts
    studio_session: str | None = None   # the ComfyClient instance that posted it

    @classmethod
    def from_list(cls, item: Any) -> QueueItem | None:
        # [number, prompt_id, prompt, extra_data, outputs_to_execute]
        if not isinstance(item, list | tuple) or len(item) < 2:
            return None
        extra = item[3] if len(item) > 3 and isinstance(item[3], Mapping) else {}
        outputs = item[4] if len(item) > 4 and isinstance(item[4], list) else []
        number = item[0] if isinstance(item[0], int | float) else 0
        client_id = extra.get("client_id")
        mark = extra.get(STUDIO_MARK)
        mark = mark if isinstance(mark, Mapping) else {}
        return cls(
            number=number,
            prompt_id=str(item[1]),
            client_id=str(client_id) if client_id is not None else None,
            outputs_to_execute=tuple(str(o) for o in outputs),
            studio_id=_str_or_none(mark.get("studio")),
            studio_session=_str_or_none(mark.get("session")),
        )


@dataclass(frozen=True)
class QueueSnapshot:
    running: list[QueueItem] = field(default_factory=list)
    pending: list[QueueItem] = field(default_factory=list)   # in run order (sorted by number)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> QueueSnapshot:
        def items(key: str) -> list[QueueItem]:
            raw = body.get(key)
            parsed = [QueueItem.from_list(i) for i in raw] if isinstance(raw, list) else []
            return [i for i in parsed if i is not None]

        # ComfyUI returns its pending heap unsorted; `number` is the run order
        pending = sorted(items("queue_pending"), key=lambda i: i.number)
        return cls(running=items("queue_running"), pending=pending)

    def is_running(self, prompt_id: str) -> bool:
        return any(i.prompt_id == prompt_id for i in self.running)

    def is_pending(self, prompt_id: str) -> bool:
        return any(i.prompt_id == prompt_id for i in self.pending)

    def position(self, prompt_id: str) -> int | None:
        """How many prompts run before this one (0 = running now or next); None if absent."""
        if self.is_running(prompt_id):
            return 0
        for index, item in enumerate(self.pending):
            if item.prompt_id == prompt_id:
                return len(self.running) + index
        return None


@dataclass(frozen=True)
class Device:
    name: str
    type: str
    vram_total: int | None = None
    vram_free: int | None = None
    # What ComfyUI's own torch has reserved (its loaded models): memory it can give back.
    torch_vram_total: int | None = None
    # The reserved-but-unused part of that; ComfyUI already counts it in `vram_free`.
    torch_vram_free: int | None = None

    @property
    def torch_vram_held(self) -> int | None:
        """Reserved by ComfyUI's torch and in use: what unloading would add to `vram_free`
        (`vram_free` already includes `torch_vram_free`, so that part must not count twice)."""
        if self.torch_vram_total is None:
            return None
        return max(0, self.torch_vram_total - (self.torch_vram_free or 0))


def _str_or_none(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class SystemStats:
    comfyui_version: str | None
    ram_total: int | None
    ram_free: int | None
    devices: list[Device] = field(default_factory=list)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> SystemStats:
        system = as_mapping(body.get("system"))
        devices = [
            Device(
                name=str(d.get("name", "")),
                type=str(d.get("type", "")),
                vram_total=_int_or_none(d.get("vram_total")),
                vram_free=_int_or_none(d.get("vram_free")),
                torch_vram_total=_int_or_none(d.get("torch_vram_total")),
                torch_vram_free=_int_or_none(d.get("torch_vram_free")),
            )
            for d in as_list(body.get("devices"))
            if isinstance(d, Mapping)
        ]
        version = system.get("comfyui_version")
        return cls(
            comfyui_version=str(version) if version is not None else None,
            ram_total=_int_or_none(system.get("ram_total")),
            ram_free=_int_or_none(system.get("ram_free")),
            devices=devices,
        )


@dataclass(frozen=True)
class PromptQueued:
    """First item of execute(): ComfyUI accepted the prompt."""

    prompt_id: str
    number: int
    position: int          # prompts ahead of this one; 0 = running now / next


@dataclass(frozen=True)
class PromptDone:
    """Last item of a successful execute()."""

    prompt_id: str
    outputs: dict[str, dict[str, Any]]
    cached_nodes: tuple[str, ...] = ()
    recovered: bool = False    # True when the result came from /history, not the websocket

    def images(self, node_id: str | None = None) -> list[ImageRef]:
        """Image refs of one output node, or of all of them in node order."""
        if node_id is not None:
            return images_in(self.outputs.get(node_id, {}))
        return [ref for output in self.outputs.values() for ref in images_in(output)]

"""ComfyUI websocket messages as frozen dataclasses.

Parsing never raises: missing fields become defaults, extra fields are ignored, and a type we
do not know (or a known type whose data is malformed) becomes UnknownMessage, so a newer
ComfyUI cannot break a running job.
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from backend.comfy.jsonish import as_mapping
from backend.comfy.types import ImageRef, images_in

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StatusMessage:
    queue_remaining: int | None
    sid: str | None = None


@dataclass(frozen=True)
class ExecutionStart:
    prompt_id: str
    timestamp: int | None = None


@dataclass(frozen=True)
class ExecutionCached:
    prompt_id: str
    nodes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Executing:
    prompt_id: str | None
    node: str | None          # None = this prompt is finished


@dataclass(frozen=True)
class ProgressMessage:
    prompt_id: str | None
    node: str | None
    value: float
    max: float


@dataclass(frozen=True)
class NodeProgress:
    node_id: str
    value: float = 0.0
    max: float = 1.0
    state: str = ""           # "running" / "finished"
    display_node_id: str | None = None
    parent_node_id: str | None = None
    real_node_id: str | None = None


@dataclass(frozen=True)
class ProgressState:
    prompt_id: str
    nodes: dict[str, NodeProgress] = field(default_factory=dict)


@dataclass(frozen=True)
class Executed:
    prompt_id: str
    node: str
    output: dict[str, Any] = field(default_factory=dict)

    @property
    def images(self) -> list[ImageRef]:
        return images_in(self.output)


@dataclass(frozen=True)
class ExecutionSuccess:
    prompt_id: str
    timestamp: int | None = None


@dataclass(frozen=True)
class ExecutionErrorMessage:
    prompt_id: str
    node_id: str | None
    node_type: str | None
    exception_type: str
    exception_message: str
    traceback: tuple[str, ...] = ()
    executed: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExecutionInterrupted:
    prompt_id: str
    node_id: str | None = None
    node_type: str | None = None
    executed: tuple[str, ...] = ()


@dataclass(frozen=True)
class FeatureFlags:
    data: dict[str, Any]


@dataclass(frozen=True)
class PreviewImage:
    image: bytes
    mime: str
    prompt_id: str | None = None   # type-1 frames carry none; the socket hub fills it in
    node_id: str | None = None


@dataclass(frozen=True)
class ProgressText:
    node_id: str
    text: str


@dataclass(frozen=True)
class UnknownMessage:
    type: str
    data: Any


Message = (
    StatusMessage | ExecutionStart | ExecutionCached | Executing | ProgressMessage | ProgressState
    | Executed | ExecutionSuccess | ExecutionErrorMessage | ExecutionInterrupted | FeatureFlags
    | PreviewImage | ProgressText | UnknownMessage
)

TERMINAL_TYPES = (ExecutionSuccess, ExecutionErrorMessage, ExecutionInterrupted)


# ---- field helpers: coerce, never raise -------------------------------------------------------

def _str(value: Any, default: str = "") -> str:
    return default if value is None else str(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _num(value: Any, default: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return value


def _opt_int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _ids(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list | tuple) else ()


def _status(d: Mapping[str, Any]) -> StatusMessage:
    exec_info = as_mapping(as_mapping(d.get("status")).get("exec_info"))
    return StatusMessage(_opt_int(exec_info.get("queue_remaining")), _opt_str(d.get("sid")))


def _node_progress(node_id: str, d: Any) -> NodeProgress:
    d = d if isinstance(d, Mapping) else {}
    return NodeProgress(
        node_id=_str(d.get("node_id"), node_id),
        value=_num(d.get("value")),
        max=_num(d.get("max"), 1.0),
        state=_str(d.get("state")),
        display_node_id=_opt_str(d.get("display_node_id")),
        parent_node_id=_opt_str(d.get("parent_node_id")),
        real_node_id=_opt_str(d.get("real_node_id")),
    )


def _progress_state(d: Mapping[str, Any]) -> ProgressState:
    nodes = as_mapping(d.get("nodes"))
    return ProgressState(
        _str(d.get("prompt_id")), {str(k): _node_progress(str(k), v) for k, v in nodes.items()}
    )


def _execution_error(d: Mapping[str, Any]) -> ExecutionErrorMessage:
    tb = d.get("traceback")
    return ExecutionErrorMessage(
        prompt_id=_str(d.get("prompt_id")),
        node_id=_opt_str(d.get("node_id")),
        node_type=_opt_str(d.get("node_type")),
        exception_type=_str(d.get("exception_type")),
        exception_message=_str(d.get("exception_message")),
        traceback=tuple(str(line) for line in tb) if isinstance(tb, list) else (),
        executed=_ids(d.get("executed")),
    )


_TEXT_PARSERS: dict[str, Callable[[Mapping[str, Any]], Message]] = {
    "status": _status,
    "execution_start": lambda d: ExecutionStart(_str(d.get("prompt_id")), _opt_int(d.get("timestamp"))),
    "execution_cached": lambda d: ExecutionCached(_str(d.get("prompt_id")), _ids(d.get("nodes"))),
    "executing": lambda d: Executing(_opt_str(d.get("prompt_id")), _opt_str(d.get("node"))),
    "progress": lambda d: ProgressMessage(
        _opt_str(d.get("prompt_id")), _opt_str(d.get("node")),
        _num(d.get("value")), _num(d.get("max"), 1.0),
    ),
    "progress_state": _progress_state,
    "executed": lambda d: Executed(
        _str(d.get("prompt_id")), _str(d.get("node")),
        dict(d["output"]) if isinstance(d.get("output"), Mapping) else {},
    ),
    "execution_success": lambda d: ExecutionSuccess(_str(d.get("prompt_id")), _opt_int(d.get("timestamp"))),
    "execution_error": _execution_error,
    "execution_interrupted": lambda d: ExecutionInterrupted(
        _str(d.get("prompt_id")), _opt_str(d.get("node_id")), _opt_str(d.get("node_type")),
        _ids(d.get("executed")),
    ),
    "feature_flags": lambda d: FeatureFlags(dict(d)),
}


def parse_text_message(raw: Mapping[str, Any] | str) -> Message:
    """A text frame (already json-decoded, or the raw string) → its dataclass."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return UnknownMessage("invalid_json", raw)
    if not isinstance(raw, Mapping):
        return UnknownMessage("invalid", raw)
    kind = _str(raw.get("type"))
    data = raw.get("data")
    parser = _TEXT_PARSERS.get(kind)
    if parser is None or not isinstance(data, Mapping):
        return UnknownMessage(kind, data)
    try:
        return parser(data)
    except Exception:  # a reshaped message must not kill the socket reader
        log.warning("could not parse ComfyUI %r message", kind, exc_info=True)
        return UnknownMessage(kind, data)


# ---- binary frames: big-endian uint32 event type, then a type-specific header -----------------

PREVIEW_IMAGE = 1
TEXT = 3
PREVIEW_IMAGE_WITH_METADATA = 4
_FORMATS = {1: "image/jpeg", 2: "image/png"}


def _u32(data: bytes, offset: int) -> int | None:
    if len(data) < offset + 4:
        return None
    value: int = struct.unpack_from(">I", data, offset)[0]
    return value


def parse_binary_message(data: bytes) -> Message:
    """A binary frame → PreviewImage (types 1 and 4), ProgressText (3) or UnknownMessage."""
    event = _u32(data, 0)
    header = _u32(data, 4)
    if event is None or header is None:
        return UnknownMessage("binary", {"length": len(data)})
    if event == PREVIEW_IMAGE:
        return PreviewImage(bytes(data[8:]), _FORMATS.get(header, "application/octet-stream"))
    if event == PREVIEW_IMAGE_WITH_METADATA:
        end = 8 + header
        try:
            meta = json.loads(data[8:end].decode("utf-8")) if len(data) >= end else None
        except (UnicodeDecodeError, ValueError):
            meta = None
        if not isinstance(meta, Mapping):
            return UnknownMessage("binary:4", {"length": len(data)})
        return PreviewImage(
            image=bytes(data[end:]),
            mime=_str(meta.get("image_type"), "image/png"),
            prompt_id=_opt_str(meta.get("prompt_id")),
            node_id=_opt_str(meta.get("node_id")),
        )
    if event == TEXT:
        end = 8 + header
        if len(data) < end:
            return UnknownMessage("binary:3", {"length": len(data)})
        node_id = data[8:end].decode("utf-8", errors="replace")
        return ProgressText(node_id, data[end:].decode("utf-8", errors="replace"))
    return UnknownMessage(f"binary:{event}", {"length": len(data)})


def prompt_id_of(message: Message) -> str | None:
    """The prompt a message belongs to, if it says (status, flags and type-1 previews do not)."""
    pid = getattr(message, "prompt_id", None)
    return pid or None

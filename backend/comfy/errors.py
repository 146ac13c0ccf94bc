"""ComfyUI failures as exceptions with a sentence a person can act on.

Every error has `.message` (what happened and what to do, for the UI) and `.detail` (the raw
facts for a log or a "details" fold). str(error) is the message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backend.comfy.jsonish import as_list, as_mapping
from backend.comfy.packs import pack_for

# File endings that make a missing "value" read as a model file in rejection messages.
_MODEL_SUFFIXES = (".safetensors", ".gguf", ".ckpt", ".pt", ".pth", ".bin", ".sft")


class ComfyError(Exception):
    """Base of everything the ComfyUI client raises."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def __str__(self) -> str:
        return self.message


class ComfyUnreachable(ComfyError):
    """`refused`: the server actively refused or reset the connection (nothing listens: it
    is down), as opposed to not answering in time (it may just be busy)."""

    def __init__(self, url: str, reason: str = "connection refused", detail: str = "",
                 *, refused: bool = False) -> None:
        super().__init__(
            f"ComfyUI at {url} is not reachable — is it running? ({reason})", detail or reason
        )
        self.url = url
        self.reason = reason
        self.refused = refused


class ComfyServerError(ComfyError):
    """ComfyUI answered, but not with what its API promises (5xx, empty or non-JSON body,
    an unexpected status)."""

    def __init__(self, method: str, path: str, status: int, body: str = "") -> None:
        where = f"{method} {path}"
        text = body.strip()
        if status >= 500 and not text:
            message = (
                f"ComfyUI failed on {where} with HTTP {status} and an empty body; the Python "
                "traceback is in ComfyUI's own log (a client that parses this body reports "
                "'Expecting value: line 1 column 1 (char 0)')."
            )
        elif status >= 500:
            message = (
                f"ComfyUI failed on {where} with HTTP {status}; see ComfyUI's log for the "
                "traceback."
            )
        elif status == 200:
            message = f"ComfyUI answered {where} with a body that is not the JSON it should be."
        else:
            message = f"ComfyUI refused {where} with HTTP {status}."
        super().__init__(message, f"HTTP {status} from {where}: {text[:2000] or '<empty body>'}")
        self.status = status
        self.path = path


@dataclass(frozen=True)
class NodeProblem:
    """One validation failure of one node input, as ComfyUI reported it."""

    node_id: str | None
    class_type: str | None
    input_name: str | None
    type: str
    message: str
    details: str = ""
    received: Any = None
    choices: tuple[Any, ...] | None = None

    def describe(self) -> str:
        where = f"Node {self.node_id}" if self.node_id else "A node"
        if self.class_type:
            where += f" ({self.class_type})"
        if self.input_name:
            where += f" input '{self.input_name}'"
        return f"{where}: {self._why()}"

    def _why(self) -> str:
        if self.type == "required_input_missing":
            return "is required but missing"
        if self.type == "value_not_in_list":
            value = self.received
            if _looks_like_model(self.input_name, value):
                return f"'{value}' is not in the model folder — put the file there or pick another"
            shown = ", ".join(repr(c) for c in (self.choices or ())[:8])
            more = ", …" if self.choices and len(self.choices) > 8 else ""
            return f"{value!r} is not one of the allowed values ({shown}{more})"
        if self.type == "custom_validation_failed":
            # details look like "image - Invalid image file: x.png"
            return self.details.split(" - ", 1)[-1] if self.details else self.message
        if self.details and self.details not in self.message:
            return f"{self.message} ({self.details})"
        return self.message


def _looks_like_model(input_name: str | None, value: Any) -> bool:
    if isinstance(value, str) and value.lower().endswith(_MODEL_SUFFIXES):
        return True
    return input_name is not None and input_name.endswith("_name") and (
        input_name != "filename_prefix")


def problems_from_node_errors(node_errors: Any) -> list[NodeProblem]:
    """ComfyUI's `node_errors` → one NodeProblem per input error, in node order."""
    if not isinstance(node_errors, Mapping):
        return []
    problems: list[NodeProblem] = []
    for node_id, raw_entry in node_errors.items():
        entry = as_mapping(raw_entry)
        class_type = entry.get("class_type")
        for err in as_list(entry.get("errors")):
            if not isinstance(err, Mapping):
                continue
            extra = as_mapping(err.get("extra_info"))
            config = extra.get("input_config")
            choices = None
            if isinstance(config, list) and config and isinstance(config[0], list):
                choices = tuple(config[0])
            elif isinstance(config, list) and len(config) > 1 and isinstance(config[1], Mapping):
                options = config[1].get("options")
                choices = tuple(options) if isinstance(options, list) else None
            problems.append(NodeProblem(
                node_id=str(node_id),
                class_type=str(class_type) if class_type else None,
                input_name=extra.get("input_name"),
                type=str(err.get("type", "")),
                message=str(err.get("message", "")),
                details=str(err.get("details", "") or ""),
                received=extra.get("received_value"),
                choices=choices,
            ))
    return problems


_MISSING_CLASS = re.compile(r"node (.+?) does not exist")
_NODE_ID = re.compile(r"#(\S+?)'?$")


class ComfyRejected(ComfyError):
    """ComfyUI refused the workflow at validation (POST /prompt)."""

    def __init__(
        self,
        error_type: str,
        problems: Sequence[NodeProblem] = (),
        *,
        error_message: str = "",
        error_details: str = "",
        extra_info: Mapping[str, Any] | None = None,
        prompt_id: str | None = None,
    ) -> None:
        self.error_type = error_type
        self.problems = list(problems)
        self.error_message = error_message
        self.error_details = error_details
        self.prompt_id = prompt_id
        self.missing_class: str | None = None
        message = self._summary(extra_info or {})
        detail_lines = [f"{error_type}: {error_message}".strip(": ")]
        if error_details:
            detail_lines.append(error_details)
        detail_lines += [f"- {p.describe()} [{p.type}: {p.details or p.message}]" for p in self.problems]
        super().__init__(message, "\n".join(detail_lines))

    @classmethod
    def from_body(cls, body: Any, *, prompt_id: str | None = None) -> ComfyRejected:
        """From a /prompt answer: 400 {"error", "node_errors"} or 200 with node_errors."""
        body = body if isinstance(body, Mapping) else {}
        error = body.get("error")
        if isinstance(error, str):      # some versions send a bare string
            error = {"type": "invalid_prompt", "message": error}
        if not isinstance(error, Mapping):
            # a 200 with node_errors: some output branches failed validation
            error = {"type": "prompt_outputs_failed_validation",
                     "message": "Some outputs failed validation"}
        extra = error.get("extra_info") if isinstance(error.get("extra_info"), Mapping) else {}
        return cls(
            str(error.get("type", "") or "invalid_prompt"),
            problems_from_node_errors(body.get("node_errors")),
            error_message=str(error.get("message", "") or ""),
            error_details=str(error.get("details", "") or ""),
            extra_info=extra,
            prompt_id=prompt_id,
        )

    def _summary(self, extra_info: Mapping[str, Any]) -> str:
        if self.problems:
            first = self.problems[0].describe()
            more = len(self.problems) - 1
            tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
            return f"ComfyUI rejected the workflow. {first}{tail}"
        missing = extra_info.get("class_type")
        if not missing and self.error_message:
            found = _MISSING_CLASS.search(self.error_message)
            missing = found.group(1) if found else None
        if self.error_type == "missing_node_type" or (missing and "does not exist" in self.error_message):
            self.missing_class = str(missing) if missing else None
            node = extra_info.get("node_id")
            if not node and self.error_details:
                found = _NODE_ID.search(self.error_details)
                node = found.group(1) if found else None
            pack = pack_for(self.missing_class or "")
            where = f" (node {node})" if node else ""
            install = f"install the custom node pack {pack}" if pack else (
                "install the custom node pack that provides it")
            return (f"ComfyUI has no node class '{self.missing_class or '?'}'{where} — "
                    f"{install}, then restart ComfyUI.")
        if self.error_type == "prompt_no_outputs":
            return "ComfyUI rejected the workflow: it has no output node (e.g. SaveImage)."
        text = self.error_message or self.error_type
        if self.error_details and self.error_details not in text:
            text = f"{text} ({self.error_details})"
        return f"ComfyUI rejected the workflow: {text}"


def is_oom(exception_type: str, exception_message: str) -> bool:
    lowered = exception_message.lower()
    return ("OutOfMemory" in exception_type or "out of memory" in lowered
            or "allocation on device" in lowered)


class ComfyExecutionFailed(ComfyError):
    """A node raised while the prompt ran (execution_error)."""

    def __init__(
        self,
        node_id: str | None,
        node_type: str | None,
        exception_type: str,
        exception_message: str,
        *,
        prompt_id: str | None = None,
        traceback: Sequence[str] = (),
    ) -> None:
        self.node_id = node_id
        self.node_type = node_type
        self.exception_type = exception_type
        self.exception_message = exception_message.strip()
        self.prompt_id = prompt_id
        self.traceback = list(traceback)
        self.is_oom = is_oom(exception_type, exception_message)
        where = f"node {node_id}" if node_id else "a node"
        if node_type:
            where += f" ({node_type})"
        short_type = exception_type.rsplit(".", 1)[-1] or "Error"
        if self.is_oom:
            message = f"ComfyUI ran out of GPU memory in {where}: {self.exception_message}"
        else:
            message = f"ComfyUI failed in {where}: {short_type}: {self.exception_message}"
        detail = f"{exception_type}: {self.exception_message}"
        if self.traceback:
            detail += "\n" + "".join(self.traceback)
        super().__init__(message, detail)

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> ComfyExecutionFailed:
        """From an execution_error message's data (websocket or history)."""
        tb = data.get("traceback")
        return cls(
            None if data.get("node_id") is None else str(data.get("node_id")),
            None if data.get("node_type") is None else str(data.get("node_type")),
            str(data.get("exception_type", "") or ""),
            str(data.get("exception_message", "") or ""),
            prompt_id=None if data.get("prompt_id") is None else str(data.get("prompt_id")),
            traceback=[str(t) for t in tb] if isinstance(tb, list) else (),
        )


class ComfyInterrupted(ComfyError):
    def __init__(self, prompt_id: str | None = None, node_id: str | None = None,
                 node_type: str | None = None) -> None:
        where = f" at node {node_id}" + (f" ({node_type})" if node_type else "") if node_id else ""
        super().__init__(f"The job was interrupted{where}.", f"prompt {prompt_id}")
        self.prompt_id = prompt_id
        self.node_id = node_id
        self.node_type = node_type


class ComfyTimeout(ComfyError):
    def __init__(self, prompt_id: str, timeout_s: float) -> None:
        super().__init__(
            f"ComfyUI did not finish the job within {timeout_s:g} s, so it was cancelled; "
            "try again, or raise the job timeout if the server is just slow.",
            f"prompt {prompt_id}",
        )
        self.prompt_id = prompt_id
        self.timeout_s = timeout_s


class ComfyPromptLost(ComfyError):
    def __init__(self, prompt_id: str) -> None:
        super().__init__(
            "ComfyUI restarted (or its queue was cleared) while this job was waiting or "
            "running, so the job is gone — run it again.",
            f"prompt {prompt_id} is in neither ComfyUI's queue nor its history",
        )
        self.prompt_id = prompt_id

"""ComfyUI 0.3.64's prompt validation, as a pure function over `/object_info` schemas.

A port of the server's own rules (proven against every recorded case in
`tests/fixtures/comfy/trace_prompt_invalid.json`): the same error types, messages, details and
`extra_info`, the same "only nodes feeding an output are checked" rule, and the same partially
valid answer (200 with non-empty `node_errors`). Python's own exceptions are used where the
server relies on them (a link to a missing node is a `KeyError`, a bad output slot an
`IndexError`), so their messages come out identical.

Used by the fake ComfyUI to answer `POST /prompt` and by the studio to check its templates.
No I/O: which input files exist is passed in.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# Nodes whose VALIDATE_INPUTS takes these inputs: the server skips the min/max/combo checks
# for them and runs the node's own check instead (LoadImage: does the file exist?).
_CUSTOM_VALIDATED: dict[str, tuple[str, ...]] = {
    "LoadImage": ("image",),
    "LoadImageMask": ("image",),
}

# The server's tracebacks name its own source; ours would name this file, which tells a
# reader nothing, so the recorded frames are reported instead.
_INNER_TRACEBACK = {
    "KeyError": 788,
    "IndexError": 790,
    "TypeError": 790,
}


@dataclass(frozen=True)
class PromptValidation:
    """The answer ComfyUI gives to `POST /prompt`, minus the parts only a server knows.

    `body` is the exact 400 body (`{"error": ..., "node_errors": ...}`) when not ok; when ok it
    is `{"node_errors": ...}` and the server adds `prompt_id` and `number`.
    """

    ok: bool
    status: int
    body: dict[str, Any]
    outputs_to_execute: list[str] = field(default_factory=list)
    node_errors: dict[str, Any] = field(default_factory=dict)

    @property
    def error_type(self) -> str | None:
        error = self.body.get("error")
        return error.get("type") if isinstance(error, dict) else None


class _Invalid(Exception):
    """A top-level rejection (no_prompt, invalid_prompt, prompt_no_outputs)."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error["message"])
        self.error = error


def _error(type_: str, message: str, details: str) -> dict[str, Any]:
    return {"type": type_, "message": message, "details": details, "extra_info": {}}


def full_type_name(klass: type) -> str:
    module = klass.__module__
    return klass.__qualname__ if module == "builtins" else f"{module}.{klass.__qualname__}"


def _traceback(exc: BaseException, inner: bool) -> list[str]:
    if inner:
        line = _INNER_TRACEBACK.get(type(exc).__name__, 790)
        frames = [("execution.py", 808, "validate_inputs"), ("execution.py", line, "validate_inputs")]
    else:
        frames = [("execution.py", 825, "validate_prompt")]
    return [
        f'  File "<COMFY_ROOT>/{path}", line {no}, in {fn}\n  <source line removed>\n'
        for path, no, fn in frames
    ]


def validate_node_input(received_type: Any, input_type: Any, strict: bool = False) -> bool:
    """Can an output of `received_type` feed an input of `input_type`? (ComfyUI's rule)."""
    if received_type == input_type:
        return True
    # The server's "*" (IO.ANY) compares equal to every type.
    if received_type == "*" or input_type == "*":
        return True
    if not isinstance(received_type, str) or not isinstance(input_type, str):
        return False
    received = {t.strip() for t in received_type.split(",")}
    accepted = {t.strip() for t in input_type.split(",")}
    if strict:
        return received.issubset(accepted)
    return len(received & accepted) > 0


def _input_names(schema: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, category) for required then optional inputs, in the schema's order."""
    inputs = schema.get("input", {}) or {}
    order = schema.get("input_order", {}) or {}
    names: list[tuple[str, str]] = []
    for category in ("required", "optional"):
        declared = inputs.get(category, {}) or {}
        listed = [n for n in order.get(category, []) if n in declared]
        listed += [n for n in declared if n not in listed]
        names += [(n, category) for n in listed]
    return names


def _input_info(schema: Mapping[str, Any], category: str, name: str) -> tuple[Any, dict[str, Any]]:
    spec = schema["input"][category][name]
    if not isinstance(spec, list | tuple) or not spec:
        return spec, {}
    extra = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return spec[0], extra


def _image_exists(name: Any, input_files: Collection[str] | None) -> bool:
    if input_files is None or not isinstance(name, str):
        return True
    if name.endswith(" [input]"):
        name = name[: -len(" [input]")]
    return name in input_files


class _Validator:
    def __init__(
        self,
        prompt: Mapping[str, Any],
        object_info: Mapping[str, Any],
        input_files: Collection[str] | None,
    ) -> None:
        self.prompt = prompt
        self.object_info = object_info
        self.input_files = input_files
        self.validated: dict[str, tuple[bool, list[dict[str, Any]], str]] = {}
        self._visiting: set[str] = set()

    def validate_inputs(self, unique_id: str) -> tuple[bool, list[dict[str, Any]], str]:
        if unique_id in self.validated:
            return self.validated[unique_id]
        if unique_id in self._visiting:
            # A cycle: the server recurses until Python gives up.
            raise RecursionError("maximum recursion depth exceeded")
        self._visiting.add(unique_id)
        try:
            return self._validate_inputs(unique_id)
        finally:
            self._visiting.discard(unique_id)

    def _validate_inputs(self, unique_id: str) -> tuple[bool, list[dict[str, Any]], str]:
        node = self.prompt[unique_id]
        inputs = node.get("inputs", {}) or {}
        class_type = node["class_type"]
        schema = self.object_info[class_type]
        custom = _CUSTOM_VALIDATED.get(class_type, ())
        errors: list[dict[str, Any]] = []
        valid = True

        for x, category in _input_names(schema):
            input_type, extra_info = _input_info(schema, category, x)
            if x not in inputs:
                if category == "required":
                    errors.append({
                        "type": "required_input_missing",
                        "message": "Required input is missing",
                        "details": f"{x}",
                        "extra_info": {"input_name": x},
                    })
                continue

            val = inputs[x]
            info = [input_type, extra_info]
            if isinstance(val, list):
                if len(val) != 2:
                    errors.append({
                        "type": "bad_linked_input",
                        "message": "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                        "details": f"{x}",
                        "extra_info": {"input_name": x, "input_config": info, "received_value": val},
                    })
                    continue
                o_id = val[0]
                # Uncaught here on purpose: a missing node / bad slot surfaces in the caller,
                # which reports it against this node (the server's behaviour).
                o_class_type = self.prompt[o_id]["class_type"]
                return_types = tuple(self.object_info[o_class_type].get("output", []))
                received_type = return_types[val[1]]
                if not validate_node_input(received_type, input_type):
                    errors.append({
                        "type": "return_type_mismatch",
                        "message": "Return type mismatch between linked nodes",
                        "details": f"{x}, received_type({received_type}) mismatch input_type({input_type})",
                        "extra_info": {
                            "input_name": x,
                            "input_config": info,
                            "received_type": received_type,
                            "linked_node": val,
                        },
                    })
                    continue
                try:
                    result = self.validate_inputs(o_id)
                    if result[0] is False:
                        valid = False
                        continue
                except Exception as ex:  # noqa: BLE001 - the server reports any exception
                    valid = False
                    self.validated[o_id] = (False, [{
                        "type": "exception_during_inner_validation",
                        "message": "Exception when validating inner node",
                        "details": str(ex),
                        "extra_info": {
                            "input_name": x,
                            "input_config": info,
                            "exception_message": str(ex),
                            "exception_type": full_type_name(type(ex)),
                            "traceback": _traceback(ex, inner=True),
                            "linked_node": val,
                        },
                    }], o_id)
                    continue
            else:
                if isinstance(val, dict) and "__value__" in val:
                    val = val["__value__"]
                try:
                    if input_type == "INT":
                        val = int(val)
                    if input_type == "FLOAT":
                        val = float(val)
                    if input_type == "STRING":
                        val = str(val)
                    if input_type == "BOOLEAN":
                        val = bool(val)
                except Exception as ex:  # noqa: BLE001 - int()/float() raise several kinds
                    errors.append({
                        "type": "invalid_input_type",
                        "message": f"Failed to convert an input value to a {input_type} value",
                        "details": f"{x}, {val}, {ex}",
                        "extra_info": {
                            "input_name": x,
                            "input_config": info,
                            "received_value": val,
                            "exception_message": str(ex),
                        },
                    })
                    continue

                if x in custom:
                    continue
                error = self._check_value(x, val, input_type, extra_info, info)
                if error is not None:
                    errors.append(error)
                    continue

        for x in custom:
            val = inputs.get(x)
            if x in inputs and not isinstance(val, list) and not _image_exists(val, self.input_files):
                errors.append({
                    "type": "custom_validation_failed",
                    "message": "Custom validation failed for node",
                    "details": f"{x} - Invalid image file: {val}",
                    "extra_info": {"input_name": x},
                })

        ret = (False, errors, unique_id) if errors or valid is not True else (True, [], unique_id)
        self.validated[unique_id] = ret
        return ret

    @staticmethod
    def _check_value(
        x: str, val: Any, input_type: Any, extra_info: dict[str, Any], info: list[Any]
    ) -> dict[str, Any] | None:
        if "min" in extra_info and val < extra_info["min"]:
            return {
                "type": "value_smaller_than_min",
                "message": "Value {} smaller than min of {}".format(val, extra_info["min"]),
                "details": f"{x}",
                "extra_info": {"input_name": x, "input_config": info, "received_value": val},
            }
        if "max" in extra_info and val > extra_info["max"]:
            return {
                "type": "value_bigger_than_max",
                "message": "Value {} bigger than max of {}".format(val, extra_info["max"]),
                "details": f"{x}",
                "extra_info": {"input_name": x, "input_config": info, "received_value": val},
            }
        if isinstance(input_type, list) or input_type == "COMBO":
            options = extra_info.get("options", []) if input_type == "COMBO" else input_type
            if val not in options:
                input_config: list[Any] | None = info
                # The server does not echo long lists (e.g. scanned model folders).
                if len(options) > 20:
                    list_info = f"(list of length {len(options)})"
                    input_config = None
                else:
                    list_info = str(options)
                return {
                    "type": "value_not_in_list",
                    "message": "Value not in list",
                    "details": f"{x}: '{val}' not in {list_info}",
                    "extra_info": {"input_name": x, "input_config": input_config, "received_value": val},
                }
        return None


def _find_outputs(
    prompt: Mapping[str, Any],
    object_info: Mapping[str, Any],
    targets: Sequence[str] | None,
) -> list[str]:
    outputs: list[str] = []
    for node_id, node in prompt.items():
        if not isinstance(node, Mapping) or "class_type" not in node:
            raise _Invalid(_error(
                "invalid_prompt",
                "Cannot execute because a node is missing the class_type property.",
                f"Node ID '#{node_id}'",
            ))
        class_type = node["class_type"]
        schema = object_info.get(class_type) if isinstance(class_type, str) else None
        if schema is None:
            raise _Invalid(_error(
                "invalid_prompt",
                f"Cannot execute because node {class_type} does not exist.",
                f"Node ID '#{node_id}'",
            ))
        if schema.get("output_node") is True and (targets is None or node_id in targets):
            outputs.append(node_id)
    if not outputs:
        raise _Invalid(_error("prompt_no_outputs", "Prompt has no outputs", ""))
    return outputs


def validate_prompt(
    prompt: Mapping[str, Any] | None,
    object_info: Mapping[str, Any],
    *,
    input_files: Collection[str] | None = None,
    partial_execution_targets: Sequence[str] | None = None,
) -> PromptValidation:
    """Validate an API-format prompt the way ComfyUI 0.3.64 does.

    `prompt` None means the request had no "prompt" key (`no_prompt`). `input_files`: paths
    relative to ComfyUI's input folder (e.g. "banana/ab12.png") that exist; None skips the
    LoadImage file check. `partial_execution_targets`: only these output node ids count.
    A prompt that is not a mapping raises TypeError (the server answers 500).
    """
    if prompt is None:
        body = {"error": _error("no_prompt", "No prompt provided", "No prompt provided"),
                "node_errors": {}}
        return PromptValidation(False, 400, body)
    if not isinstance(prompt, Mapping):
        raise TypeError(f"prompt must be an object, not {type(prompt).__name__}")
    try:
        outputs = _find_outputs(prompt, object_info, partial_execution_targets)
    except _Invalid as invalid:
        return PromptValidation(False, 400, {"error": invalid.error, "node_errors": {}})

    validator = _Validator(prompt, object_info, input_files)
    good_outputs: list[str] = []
    failed: list[tuple[str, list[dict[str, Any]]]] = []
    node_errors: dict[str, Any] = {}
    for o in outputs:
        try:
            valid, reasons, _ = validator.validate_inputs(o)
        except Exception as ex:  # noqa: BLE001 - the server reports any exception
            valid = False
            reasons = [{
                "type": "exception_during_validation",
                "message": "Exception when validating node",
                "details": str(ex),
                "extra_info": {
                    "exception_type": full_type_name(type(ex)),
                    "traceback": _traceback(ex, inner=False),
                },
            }]
            validator.validated[o] = (False, reasons, o)
        if valid is True:
            good_outputs.append(o)
            continue
        failed.append((o, reasons))
        # As the server does: every node holding errors so far lists this output as dependent
        # (upstream nodes that only inherit a failure carry no errors and are not reported).
        for node_id, (node_valid, node_reasons, _) in validator.validated.items():
            if node_valid is not True and node_reasons:
                if node_id not in node_errors:
                    node_errors[node_id] = {
                        "errors": node_reasons,
                        "dependent_outputs": [],
                        "class_type": prompt[node_id]["class_type"],
                    }
                node_errors[node_id]["dependent_outputs"].append(o)
        log.debug("output %s failed validation: %s", o, reasons)

    if not good_outputs:
        details = "\n".join(f"{e['message']}: {e['details']}" for _, errors in failed for e in errors)
        error = {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
            "details": details,
            "extra_info": {},
        }
        return PromptValidation(False, 400, {"error": error, "node_errors": node_errors},
                                [], node_errors)
    return PromptValidation(True, 200, {"node_errors": node_errors}, good_outputs, node_errors)

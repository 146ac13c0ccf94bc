"""An app's controls: what its roles expose, with the real limits and options from ComfyUI's
`/object_info` (a `#param:blur_radius` on ImageBlur is a whole number from 1 to 31).

With `/object_info` the classes are checked too: a role on a class that cannot carry it is an
`AppError` naming the file, the node and the role. Without it (ComfyUI not reachable yet) the
controls come from the workflow's own values, without limits, and the check waits for the
next load that has it.
"""

from __future__ import annotations

import keyword
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from backend import limits
from backend.apps.app import App, AppError
from backend.requests import RequestBase
from backend.workflows.binding import is_link
from backend.workflows.roles import PARAM_PREFIX

ObjectInfo = Mapping[str, Any]
Scalar = str | int | float | bool


class ControlKind(Enum):
    PROMPT = "prompt"        # text for #prompt
    NEGATIVE = "negative"    # text for #negative
    IMAGE = "image"          # the picture
    MASK = "mask"            # painted over the picture
    SEED = "seed"
    STEPS = "steps"
    INT = "int"
    FLOAT = "float"
    TEXT = "text"
    BOOL = "bool"
    CHOICE = "choice"


# Fields every app request has (backend/apps/mode.py); a param may not take these names.
RESERVED = frozenset({"mode", "prompt", "image", "mask",
                      *(f for f in RequestBase.__dataclass_fields__)})


@dataclass(frozen=True)
class Control:
    """One control: `name` is the request field (and the API's form field), `roles` the
    template roles its value binds to, through `field` (the role's field)."""

    name: str
    kind: ControlKind
    label: str
    roles: tuple[str, ...]
    field: str
    default: Scalar | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    options: tuple[str, ...] = ()
    multiline: bool = False

    @property
    def is_param(self) -> bool:
        return self.kind in PARAM_KINDS


PARAM_KINDS = frozenset({ControlKind.INT, ControlKind.FLOAT, ControlKind.TEXT, ControlKind.BOOL,
                         ControlKind.CHOICE})


def controls_of(app: App, object_info: ObjectInfo | None) -> tuple[Control, ...]:
    """The app's controls in a fixed order (picture, prompts, params, seed, steps)."""
    roles = app.template.roles
    out: list[Control] = []
    if "image" in roles:
        _check_upload(app, "image", object_info)
        out.append(Control("image", ControlKind.IMAGE, _label(app, "image", "Picture"),
                           ("image",), "file"))
    if "mask" in roles:
        _check_upload(app, "mask", object_info)
        out.append(Control("mask", ControlKind.MASK, "Mask", ("mask",), "file"))
    for role, kind, default_label in (("prompt", ControlKind.PROMPT, "Prompt"),
                                      ("negative", ControlKind.NEGATIVE, "Negative prompt")):
        if role in roles:
            _check_inputs(app, role, ("text", "prompt"), ("STRING",), object_info)
            name = "prompt" if role == "prompt" else "negative_prompt"
            out.append(Control(name, kind, _label(app, role, default_label), (role,), "text",
                               default=_text_default(app, role), multiline=True))
    for role in [r for r in roles if r.startswith(PARAM_PREFIX)]:   # the workflow's order
        out.append(_param(app, role, object_info))
    seeds = tuple(r for r in ("seed", "sampler") if r in roles)
    if seeds:
        for role in seeds:
            _check_inputs(app, role, ("seed", "noise_seed"), ("INT",), object_info)
        out.append(Control("seed", ControlKind.SEED, "Seed", seeds, "seed",
                           low=limits.SEED.low, high=limits.SEED.high, step=1))
    steps = tuple(r for r in ("steps", "sampler") if r in roles)
    if steps:
        low, high = float(limits.STEPS.low), float(limits.STEPS.high)
        for role in steps:
            spec = _check_inputs(app, role, ("steps",), ("INT",), object_info)
            if spec is not None:
                low = max(low, float(spec.get("min", low)))
                high = min(high, float(spec.get("max", high)))
        default = _value(app, steps[0], ("steps",))
        out.append(Control("steps", ControlKind.STEPS, "Steps", steps, "steps",
                           default=default if isinstance(default, int) else None,
                           low=low, high=high, step=1))
    return tuple(out)


def _param(app: App, role: str, object_info: ObjectInfo | None) -> Control:
    input_name = role.removeprefix(PARAM_PREFIX)
    node_id = app.template.roles[role][0]
    where = _where(app, node_id, role)
    if keyword.iskeyword(input_name) or input_name in RESERVED:
        raise AppError(
            f"{where}: '{input_name}' is a name the studio keeps for itself; use "
            f"{_reserved_hint(input_name)}."
        )
    for nid in app.template.roles[role]:
        if is_link(app.template.graph[nid]["inputs"].get(input_name)):
            raise AppError(
                f"{_where(app, nid, role)}: '{input_name}' is connected to another node; "
                "#param exposes an input that holds a value (a number, text or choice)."
            )
    value = _value(app, role, (input_name,))
    spec = _input_spec(app, node_id, input_name, role, object_info)
    label = _label(app, role, input_name.replace("_", " ").capitalize())
    if spec is None:  # no /object_info yet: the workflow's own value says the type
        kind = (ControlKind.BOOL if isinstance(value, bool) else ControlKind.INT
                if isinstance(value, int) else ControlKind.FLOAT
                if isinstance(value, float) else ControlKind.TEXT)
        return Control(input_name, kind, label, (role,), "value", default=_scalar(value))
    kind_name, options = spec
    if isinstance(kind_name, list):
        choices = tuple(str(o) for o in kind_name)
        return Control(input_name, ControlKind.CHOICE, label, (role,), "value",
                       default=_scalar(value), options=choices)
    kinds = {"INT": ControlKind.INT, "FLOAT": ControlKind.FLOAT, "STRING": ControlKind.TEXT,
             "BOOLEAN": ControlKind.BOOL}
    if kind_name not in kinds:
        raise AppError(
            f"{where}: '{input_name}' of {app.template.graph[node_id]['class_type']} takes a "
            f"{kind_name} link, not a value; #param exposes a number, text, switch or choice."
        )
    kind = kinds[kind_name]
    return Control(
        input_name, kind, label, (role,), "value", default=_scalar(value),
        low=_number(options.get("min")), high=_number(options.get("max")),
        step=_number(options.get("step")) or (1.0 if kind is ControlKind.INT else None),
        multiline=bool(options.get("multiline")),
    )


def _input_spec(
    app: App, node_id: str, input_name: str, role: str, object_info: ObjectInfo | None
) -> tuple[object, Mapping[str, Any]] | None:
    """(type or option list, options) of one input from /object_info; None without it."""
    if object_info is None:
        return None
    class_type = app.template.graph[node_id]["class_type"]
    schema = object_info.get(class_type)
    if not isinstance(schema, Mapping):
        return None   # a missing class: readiness says which pack to install
    inputs = schema.get("input", {})
    entry = inputs.get("required", {}).get(input_name) or inputs.get("optional", {}).get(
        input_name)
    if not isinstance(entry, list | tuple) or not entry:
        raise AppError(
            f"{_where(app, node_id, role)}: {class_type} has no input '{input_name}' "
            f"(its inputs: {', '.join(sorted(_names(inputs)))})."
        )
    options = entry[1] if len(entry) > 1 and isinstance(entry[1], Mapping) else {}
    return entry[0], options


def _check_inputs(
    app: App, role: str, names: tuple[str, ...], types: tuple[str, ...],
    object_info: ObjectInfo | None,
) -> Mapping[str, Any] | None:
    """Each node of `role` has one of `names` of one of `types` in its class; the options
    of the first one found."""
    first: Mapping[str, Any] | None = None
    for node_id in app.template.roles[role]:
        inputs = app.template.graph[node_id]["inputs"]
        name = next((n for n in names if n in inputs), names[0])
        spec = _input_spec(app, node_id, name, role, object_info)
        if spec is None:
            continue
        if spec[0] not in types:
            raise AppError(
                f"{_where(app, node_id, role)}: its '{name}' is {spec[0]}, not "
                f"{' or '.join(types)}; #{role} goes on a node with a {types[0]} '{name}'."
            )
        first = first or spec[1]
    return first


def _check_upload(app: App, role: str, object_info: ObjectInfo | None) -> None:
    """A picture role goes on an image upload (LoadImage): a combo with `image_upload`."""
    for node_id in app.template.roles[role]:
        spec = _input_spec(app, node_id, "image", role, object_info)
        if spec is not None and not (isinstance(spec[0], list) and spec[1].get("image_upload")):
            raise AppError(
                f"{_where(app, node_id, role)}: #{role} goes on a LoadImage (an image upload), "
                f"not on {app.template.graph[node_id]['class_type']}."
            )


def check_output(app: App, object_info: ObjectInfo | None) -> None:
    """`#output` goes on a node that saves pictures (SaveImage)."""
    if object_info is None:
        return
    for node_id in app.template.roles["output"]:
        class_type = app.template.graph[node_id]["class_type"]
        schema = object_info.get(class_type)
        if isinstance(schema, Mapping) and not schema.get("output_node"):
            raise AppError(
                f"{_where(app, node_id, 'output')}: #output goes on a SaveImage (a node that "
                f"saves pictures), not on {class_type}."
            )


def _where(app: App, node_id: str, role: str) -> str:
    node = app.template.graph[node_id]
    return (f"{app.path.name}: node {node_id} ({node['class_type']}, "
            f"'{app.node_title(node_id)}') #{role}")


def _label(app: App, role: str, fallback: str) -> str:
    """The node's title without its role tags ("Blur #param:blur_radius" → "Blur")."""
    title = app.node_title(app.template.roles[role][0])
    words = " ".join(w for w in title.split() if not w.startswith("#")).strip()
    return words or fallback


def _value(app: App, role: str, names: tuple[str, ...]) -> object:
    inputs = app.template.graph[app.template.roles[role][0]]["inputs"]
    return next((inputs[n] for n in names if n in inputs), None)


def _text_default(app: App, role: str) -> str:
    value = _value(app, role, ("text", "prompt"))
    return value if isinstance(value, str) else ""


def _scalar(value: object) -> Scalar | None:
    return value if isinstance(value, str | int | float | bool) else None


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def _names(inputs: Mapping[str, Any]) -> set[str]:
    return {n for part in ("required", "optional") for n in inputs.get(part, {})}


def _reserved_hint(name: str) -> str:
    return {"seed": "#seed", "steps": "#steps", "prompt": "#prompt",
            "negative_prompt": "#negative", "image": "#image",
            "mask": "#mask"}.get(name, "another input")

"""Binding: a template plus the studio's values by role → the graph to post to `/prompt`.

Never by node id (ids change on every re-export). A value for a role the template lacks is
an error, never a skip (a silent skip once ran the template's default prompt instead of the
user's). Image slots without a value are pruned with what only they feed, never filled with a
placeholder file. Each output SaveImage gets a per-submission nonce in its file name prefix,
so an identical resubmission is not served from ComfyUI's cache.
"""

from __future__ import annotations

import copy
import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from backend.workflows.roles import IMAGE_SLOT_ROLES, OUTPUT_ROLES, role_spec
from backend.workflows.template import MissingRole, Template, TemplateError

log = logging.getLogger(__name__)

NONCE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
OUTPUT_FOLDER = "banana"

# Optional inputs of the classes our templates prune around, used when no object_info is
# given (the recorded schema agrees). An input not listed here counts as required.
KNOWN_OPTIONAL_INPUTS: dict[str, frozenset[str]] = {
    "TextEncodeQwenImageEditPlus": frozenset({"vae", "image1", "image2", "image3"}),
    "TextEncodeQwenImageEdit": frozenset({"vae", "image"}),
    "ReferenceLatent": frozenset({"latent"}),
    "ImageCompositeMasked": frozenset({"mask"}),
    "ImageStitch": frozenset({"image2"}),
    "Sam2Segmentation": frozenset(
        {"coordinates_positive", "coordinates_negative", "bboxes", "mask"}
    ),
}


def new_nonce() -> str:
    """A fresh per-submission token for output file names."""
    return uuid.uuid4().hex[:12]


def output_prefix(mode: str, nonce: str, role: str = "output") -> str:
    suffix = "-mask" if role == "mask_output" else ""
    return f"{OUTPUT_FOLDER}/{mode}-{nonce}{suffix}"


def is_link(value: Any) -> bool:
    """API-format links are `[source_node_id, output_index]`."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def _given_fields(value: Mapping[str, Any] | None) -> dict[str, Any]:
    # None means "keep the template's value", so a role whose fields are all None is unset.
    return {f: v for f, v in (value or {}).items() if v is not None}


def _is_optional(class_type: str, name: str, object_info: Mapping[str, Any] | None) -> bool:
    if object_info is not None and class_type in object_info:
        return name in object_info[class_type].get("input", {}).get("optional", {})
    return name in KNOWN_OPTIONAL_INPUTS.get(class_type, frozenset())


def bind(
    template: Template,
    values: Mapping[str, Mapping[str, Any] | None],
    *,
    nonce: str,
    object_info: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Return a new graph (nodes only) with `values` set on the nodes of each role.

    `values` is `{role: {field: value}}` with fields from `roles.ROLES`; a field set to None
    keeps the template's value. `object_info`, when given, decides which inputs are optional
    while pruning; otherwise `KNOWN_OPTIONAL_INPUTS` does.
    """
    if not NONCE_PATTERN.match(nonce):
        raise ValueError(f"nonce must be 1-64 letters, digits, '-' or '_', got {nonce!r}")
    given = {role: _given_fields(v) for role, v in values.items()}
    given = {role: fields for role, fields in given.items() if fields}
    for role in given:
        if role not in template.roles:
            raise MissingRole(template.mode, template.path, role)

    graph = copy.deepcopy(template.graph)
    unused = sorted(r for r in IMAGE_SLOT_ROLES & template.roles.keys() if r not in given)
    if unused:
        prune(graph, template, unused, object_info)

    for role, fields in given.items():
        for node_id in template.roles[role]:
            if node_id in graph:
                _set_fields(graph[node_id], node_id, role, fields, template)
            else:
                log.debug("%s: #%s node %s was pruned; value not set", template.path, role, node_id)

    for role in OUTPUT_ROLES:
        for node_id in template.roles.get(role, ()):
            if node_id in graph:
                graph[node_id]["inputs"]["filename_prefix"] = output_prefix(
                    template.mode, nonce, role
                )
    return graph


def _set_fields(
    node: dict[str, Any], node_id: str, role: str, fields: Mapping[str, Any], template: Template
) -> None:
    spec = role_spec(role)
    if spec is None:
        raise TemplateError(f"#{role} is not a role the studio knows.")
    inputs = node["inputs"]
    for field_name, value in fields.items():
        if field_name not in spec.fields:
            raise TemplateError(
                f"#{role} has no field '{field_name}' (fields: {', '.join(spec.fields)})."
            )
        targets = [name for name in spec.fields[field_name] if name in inputs]
        if not targets:
            raise TemplateError(
                f"The {template.mode} template {template.path}: node {node_id} "
                f"({node['class_type']}) is #{role} but has no input for '{field_name}' "
                f"(expected one of {', '.join(spec.fields[field_name])})."
            )
        for name in targets:
            inputs[name] = copy.deepcopy(value)


def prune(
    graph: dict[str, dict[str, Any]],
    template: Template,
    slot_roles: Iterable[str],
    object_info: Mapping[str, Any] | None = None,
) -> set[str]:
    """Remove the slots' LoadImage nodes and every node fed only by removed nodes (in place).

    Optional inputs of kept nodes that pointed at removed nodes are dropped; a required one
    would dangle, which is a TemplateError naming the node, the input and the slot.
    """
    slot_roles = list(slot_roles)
    # origin: removed node → the slot role it was removed for (named in errors).
    origin = {nid: role for role in slot_roles for nid in template.roles.get(role, ())}
    changed = True
    while changed:
        changed = False
        for node_id, node in graph.items():
            if node_id in origin:
                continue
            sources = [v[0] for v in node["inputs"].values() if is_link(v)]
            if sources and all(src in origin for src in sources):
                origin[node_id] = origin[sources[0]]
                changed = True
    for node_id in origin:
        graph.pop(node_id, None)
    for node_id, node in graph.items():
        for name, value in list(node["inputs"].items()):
            if not (is_link(value) and value[0] in origin):
                continue
            if not _is_optional(node["class_type"], name, object_info):
                raise TemplateError(
                    f"The {template.mode} template {template.path} needs an image for "
                    f"#{origin[value[0]]}: node {node_id} ({node['class_type']}) input '{name}' "
                    f"depends on it and cannot be left unconnected."
                )
            del node["inputs"][name]
    log.debug("%s: pruned %s for unused %s", template.path, sorted(origin), slot_roles)
    return set(origin)

"""Templates: API-format ComfyUI workflows in `workflows/`, found by mode and variant.

`<mode>.json` is a mode's default template and `<mode>.<variant>.json` a variant. Loading
strips keys that are not nodes (ComfyUI's `/prompt` fails on a metadata key such as an
exported "extra" entry), finds the role of every node from its title, and checks that the
roles the mode needs (its `ModeSpec.roles`, passed in) are all present, so a user-authored
template fails when it is loaded, naming the mode, the file and the role.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.workflows.roles import OUTPUT_ROLES, role_spec, roles_in_title

log = logging.getLogger(__name__)

DEFAULT_VARIANT = "default"
# Mode and variant names end up in file paths: plain words only, so they never leave the folder.
VARIANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
MODE_PATTERN = re.compile(r"^[a-z][a-z0-9_-]*$")
# A workflow app's mode is `app-<stem>`; its template is `<apps folder>/<stem>.json`
# (backend/apps), with no variants.
APP_PREFIX = "app-"


class TemplateError(Exception):
    """A template that cannot be used; `.message` says which file and what to fix."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class MissingRole(TemplateError):
    """The template lacks a role the mode needs (or a value was given for)."""

    def __init__(self, mode: str, path: Path | str, role: str) -> None:
        spec = role_spec(role)
        what = f" ({spec.description})" if spec else ""
        super().__init__(
            f"The {mode} template {path} has no node titled with #{role}{what}. "
            f"Add '#{role}' to that node's title in ComfyUI and export with 'Save (API Format)'."
        )
        self.mode = mode
        self.path = Path(path)
        self.role = role


# eq=False: identity hashing (the graph is a dict, so field hashing would fail).
@dataclass(frozen=True, eq=False)
class Template:
    mode: str
    variant: str
    path: Path
    # Only nodes: {node_id: {"class_type", "inputs", "_meta"?}}. Never mutate; bind() copies.
    graph: dict[str, dict[str, Any]] = field(repr=False)
    roles: dict[str, list[str]] = field(default_factory=dict)

    @property
    def output_roles(self) -> dict[str, str]:
        """`{"output": node_id, "mask_output": node_id}`: where results are read from."""
        return {role: ids[0] for role, ids in self.roles.items() if role in OUTPUT_ROLES and ids}

    def nodes_with(self, role: str) -> list[str]:
        return list(self.roles.get(role, ()))

    def require(self, roles: Collection[str]) -> None:
        """MissingRole (naming the first, alphabetically) unless every role is here."""
        missing = sorted(set(roles) - self.roles.keys())
        if missing:
            raise MissingRole(self.mode, self.path, missing[0])


def split_name(path: Path) -> tuple[str, str]:
    """`inpaint.conditioning.json` → ("inpaint", "conditioning"); `edit.json` → ("edit", "default")."""
    stem = path.name.removesuffix(".json")
    mode, _, variant = stem.partition(".")
    return mode, variant or DEFAULT_VARIANT


def _is_ui_format(data: Any) -> bool:
    # The UI ("Save") format is {"nodes": [...], "links": [...], ...}; API format is a dict of nodes.
    return isinstance(data, dict) and isinstance(data.get("nodes"), list) and "links" in data


def parse_graph(data: Any, path: Path) -> dict[str, dict[str, Any]]:
    """Keep only node entries; reject the UI format with the fix."""
    if _is_ui_format(data):
        raise TemplateError(
            f"{path} is a ComfyUI UI workflow, not API format. In ComfyUI, "
            "export it with 'Save (API Format)' (enable dev mode options if the menu lacks it)."
        )
    if not isinstance(data, dict):
        raise TemplateError(
            f"{path} is not a ComfyUI API-format workflow (expected a JSON object)."
        )
    graph: dict[str, dict[str, Any]] = {}
    for key, node in data.items():
        if not isinstance(node, dict) or "class_type" not in node:
            log.debug("%s: dropping non-node key %r", path, key)
            continue
        inputs = node.get("inputs", {})
        if not isinstance(inputs, dict):
            raise TemplateError(f"{path}: node {key} has 'inputs' that is not an object.")
        clean: dict[str, Any] = {"class_type": node["class_type"], "inputs": inputs}
        if isinstance(node.get("_meta"), dict):
            clean["_meta"] = node["_meta"]
        graph[str(key)] = clean
    if not graph:
        raise TemplateError(f"{path} has no nodes (no entry with a class_type).")
    return graph


def find_roles(graph: dict[str, dict[str, Any]], path: Path) -> dict[str, list[str]]:
    """Map each role to the nodes whose title carries it; a node must have the role's inputs."""
    roles: dict[str, list[str]] = {}
    for node_id, node in graph.items():
        title = node.get("_meta", {}).get("title", "")
        for role in roles_in_title(title):
            spec = role_spec(role)
            assert spec is not None     # roles_in_title gives known roles only
            accepted = {name for names in spec.fields.values() for name in names}
            if not accepted & node["inputs"].keys():
                raise TemplateError(
                    f"{path}: node {node_id} ({node['class_type']}, '{title}') is marked "
                    f"#{role} but has none of its inputs ({', '.join(sorted(accepted))}); "
                    f"#{role} belongs on a {spec.description} node."
                )
            roles.setdefault(role, []).append(node_id)
    return roles


def load_template(
    path: Path | str, required: Collection[str] = (), *, mode: str | None = None
) -> Template:
    """Load one template; `required` are the roles its mode needs (MissingRole names one).
    `mode` names it when the file name does not (a workflow app's `app-<stem>`)."""
    path = Path(path)
    named, variant = split_name(path)
    mode = mode or named
    if not MODE_PATTERN.match(mode):
        raise TemplateError(
            f"{path}: '{mode}' is not a mode name (file names are <mode>.json or "
            "<mode>.<variant>.json)."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TemplateError(f"No {mode} template at {path}.") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TemplateError(f"{path} could not be read as JSON: {exc}", detail=repr(exc)) from exc
    graph = parse_graph(data, path)
    roles = find_roles(graph, path)
    template = Template(mode=mode, variant=variant, path=path, graph=graph, roles=roles)
    template.require(required)
    return template


class TemplateLibrary:
    """The templates of one folder; a file is re-read when its mtime or size changes.

    `get(mode, variant, required=roles)` checks the roles the caller's mode needs, so the
    library itself knows no modes (the registry does). With `apps_directory`, the mode
    `app-<stem>` reads `<apps_directory>/<stem>.json` (a workflow app, backend/apps)."""

    def __init__(self, directory: Path | str, apps_directory: Path | str | None = None) -> None:
        self.directory = Path(directory)
        self.apps_directory = Path(apps_directory) if apps_directory is not None else None
        self._cache: dict[Path, tuple[tuple[int, int], Template]] = {}

    def app_path(self, mode: str) -> Path | None:
        """A workflow app's file, or None when `mode` is not an app's."""
        if self.apps_directory is None or not mode.startswith(APP_PREFIX):
            return None
        return self.apps_directory / f"{mode.removeprefix(APP_PREFIX)}.json"

    def path_for(self, mode: str, variant: str | None = None) -> Path:
        if not MODE_PATTERN.match(mode):
            raise TemplateError(f"'{mode}' is not a mode name.")
        app = self.app_path(mode)
        if app is not None:
            if variant not in (None, "", DEFAULT_VARIANT):
                raise TemplateError(f"The workflow app {app.name} has no variants.")
            return app
        if variant in (None, "", DEFAULT_VARIANT):
            return self.directory / f"{mode}.json"
        if not VARIANT_PATTERN.match(variant):
            raise TemplateError(f"'{variant}' is not a valid template variant name.")
        return self.directory / f"{mode}.{variant}.json"

    def get(
        self, mode: str, variant: str | None = None, *, required: Collection[str] = ()
    ) -> Template:
        path = self.path_for(mode, variant)
        try:
            st = os.stat(path)
        except FileNotFoundError as exc:
            self._cache.pop(path, None)
            known = ", ".join(self.variants(mode)) or "none"
            raise TemplateError(
                f"No {mode} template '{variant or DEFAULT_VARIANT}' in {self.directory} "
                f"(expected {path.name}; available: {known})."
            ) from exc
        stamp = (st.st_mtime_ns, st.st_size)
        cached = self._cache.get(path)
        if cached and cached[0] == stamp:
            template = cached[1]
        else:
            template = load_template(path, mode=mode if self.app_path(mode) else None)
            if cached:
                log.info("reloaded template %s", path)
            self._cache[path] = (stamp, template)
        template.require(required)
        return template

    def variants(self, mode: str) -> list[str]:
        """Variant names present on disk for `mode`, "default" first."""
        found: list[str] = []
        app = self.app_path(mode)
        if app is not None:
            return [DEFAULT_VARIANT] if app.is_file() else []
        if not self.directory.is_dir():
            return found
        for path in self.directory.glob(f"{mode}*.json"):
            m, variant = split_name(path)
            if m == mode and (variant == DEFAULT_VARIANT or VARIANT_PATTERN.match(variant)):
                found.append(variant)
        rest = sorted(v for v in found if v != DEFAULT_VARIANT)
        return ([DEFAULT_VARIANT] if DEFAULT_VARIANT in found else []) + rest

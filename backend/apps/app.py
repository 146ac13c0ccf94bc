"""One workflow app: a ComfyUI API-format workflow in the apps folder whose node titles carry
roles. Loading reuses the template machinery (backend/workflows: parsing, roles from titles,
the checks every template gets) and adds what an app needs on top: an `#output` node, only
roles an app can expose, a file name that makes a mode name, and a title.

Every problem is an `AppError` whose message names the file, and where it is about a node,
the node, its class and the role.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.workflows import Template, TemplateError
from backend.workflows.roles import PARAM_PREFIX, ROLES
from backend.workflows.template import APP_PREFIX, DEFAULT_VARIANT, find_roles, parse_graph

# Roles an app exposes as controls (`#param:<input>` aside), and what each becomes.
APP_ROLES: dict[str, str] = {
    "prompt": "a prompt box",
    "negative": "a negative prompt box",
    "image": "a picture upload",
    "mask": "a mask painted over the picture",
    "seed": "a seed",
    "steps": "a steps slider",
    "sampler": "a seed and a steps slider",
    "output": "the result (required)",
}
ROLE_WORD = re.compile(r"#([A-Za-z_][A-Za-z0-9_]*(?::[A-Za-z0-9_]*)?)")
STEM_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
KNOWN = ", ".join(f"#{r}" for r in APP_ROLES) + ", #param:<input name>"


class AppError(TemplateError):
    """A workflow app that cannot be used; `.message` names the file (and node, role)."""


@dataclass(frozen=True, eq=False)
class App:
    """A loaded, structurally valid app: its mode name, title and template."""

    name: str          # app-<stem>
    title: str
    path: Path
    template: Template

    @property
    def takes_image(self) -> bool:
        return "image" in self.template.roles

    def node_title(self, node_id: str) -> str:
        meta = self.template.graph[node_id].get("_meta", {})
        return str(meta.get("title", "")) if isinstance(meta, dict) else ""


def is_app_mode(name: str) -> bool:
    """The mode is a workflow app's (its tab is the Apps tab, not one of its own)."""
    return name.startswith(APP_PREFIX)


def mode_name(path: Path) -> str:
    return APP_PREFIX + path.name.removesuffix(".json")


def title_from_stem(stem: str) -> str:
    """`negative_film` → "Negative film"."""
    words = re.sub(r"[_-]+", " ", stem).strip()
    return words[:1].upper() + words[1:]


def load_app(path: Path) -> App:
    """Read and check one app file (AppError says what to fix)."""
    stem = path.name.removesuffix(".json")
    if not STEM_PATTERN.match(stem):
        raise AppError(
            f"{path.name}: an app's file name becomes its model id (app-<name>); use "
            "lowercase letters, digits, '_' and '-' (for example negative_film.json)."
        )
    name = mode_name(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AppError(f"{path.name} could not be read as JSON: {exc}", repr(exc)) from exc
    try:
        graph = parse_graph(data, path)
        _check_roles(graph, path)    # first: a typo is named as one, not as a misplaced role
        template = Template(name, DEFAULT_VARIANT, path, graph, find_roles(graph, path))
    except AppError:
        raise
    except TemplateError as exc:
        raise AppError(exc.message, exc.detail) from exc
    if "output" not in template.roles:
        raise AppError(
            f"{path.name}: no output node. Add '#output' to the title of the SaveImage whose "
            "picture is the app's result."
        )
    if "mask" in template.roles and "image" not in template.roles:
        raise AppError(
            f"{path.name}: a #mask is painted over the #image, but no node is titled #image."
        )
    return App(name, _title(data) or title_from_stem(stem), path, template)


def _check_roles(graph: dict[str, dict[str, Any]], path: Path) -> None:
    """Every `#word` in a title must be a role an app exposes: a typo never goes unnoticed."""
    for node_id, node in graph.items():
        meta = node.get("_meta", {})
        title = str(meta.get("title", "")) if isinstance(meta, dict) else ""
        for word in ROLE_WORD.findall(title):
            if word.startswith(PARAM_PREFIX) and len(word) > len(PARAM_PREFIX):
                continue
            if word in APP_ROLES:
                continue
            where = f"{path.name}: node {node_id} ({node['class_type']}, '{title}')"
            if word in ROLES:
                raise AppError(
                    f"{where}: #{word} is a built-in mode's role; an app exposes {KNOWN}."
                )
            raise AppError(f"{where}: unknown role #{word}; an app knows {KNOWN}.")


def _title(data: object) -> str | None:
    """The file's own title: a top-level "title" string (ComfyUI ignores it; the template
    loader drops it with the other non-node keys)."""
    title = data.get("title") if isinstance(data, dict) else None
    return title.strip() if isinstance(title, str) and title.strip() else None

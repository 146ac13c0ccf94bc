"""Which modes this ComfyUI server can run, and if not, why.

Per mode, against one /object_info and one listing per model folder (however many modes need
it): the node classes and model files of its default template (the files settings name, as
binding will), then the template bound as a real job would bind it (the mode's warm-up
request, placeholder file names for the uploads) and checked with ComfyUI's own validation
(backend/comfy/validation.py). A problem is "not ready: <reason>", never an exception.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from backend.comfy.validation import validate_prompt
from backend.modes import ModeRegistry, ModeSpec, WarmupInputs
from backend.operations.families import GGUF
from backend.requests import InvalidRequest, RequestBase
from backend.settings import Settings
from backend.workflows import (
    Requirements,
    Template,
    TemplateError,
    TemplateLibrary,
    bind,
    check_ready,
    requirements,
)

log = logging.getLogger(__name__)

PLACEHOLDER_FILE = "banana/preflight.png"   # LoadImage files are not checked (none uploaded)
# The placeholder job's pictures are scaled to this budget: the bound values do not depend on
# the size, and small pictures keep the check to a few milliseconds per mode.
PLACEHOLDER_PIXELS = 128 * 128


class ServerInfo(Protocol):
    """What preflight asks ComfyUI (backend.comfy.ComfyClient)."""

    async def object_info(self) -> dict[str, Any]: ...

    async def models(self, folder: str) -> list[str]: ...


@dataclass(frozen=True)
class ModeReadiness:
    """`message` says what to install or fix ("" when ready). `gguf_ready`: the mode's GGUF
    variant (ComfyUI-GGUF's loaders, the STUDIO_MODEL_*_GGUF files) could run too (None: the
    mode has none); `gguf_message` why not."""

    ready: bool
    message: str = ""
    gguf_ready: bool | None = None
    gguf_message: str = ""


async def check_modes(
    client: ServerInfo, library: TemplateLibrary, settings: Settings, registry: ModeRegistry
) -> dict[str, ModeReadiness]:
    """Readiness per mode. ComfyError from the server propagates (the caller shows offline)."""
    object_info = await client.object_info()
    listings: dict[str, list[str]] = {}
    found: dict[str, tuple[ModeSpec[RequestBase], Template, Requirements]] = {}
    found_gguf: dict[str, tuple[ModeSpec[RequestBase], Template, Requirements]] = {}
    result: dict[str, ModeReadiness] = {}
    for spec in registry:
        try:
            template = library.get(spec.name, required=spec.roles)
        except TemplateError as exc:
            result[spec.name] = ModeReadiness(False, exc.message)
            continue
        reqs = requirements(template, model_names=spec.family.files(settings))
        found[spec.name] = (spec, template, reqs)
        gguf = _gguf_template(spec, library)
        if gguf is not None:
            found_gguf[spec.name] = (spec, gguf, requirements(
                gguf, model_names=spec.family.files_for(settings, GGUF)))
    # GGUF files are listed under unet_gguf / clip_gguf (404, so [], without the pack).
    for _, _, reqs in (*found.values(), *found_gguf.values()):
        for folder in reqs.models:
            if folder not in listings:
                listings[folder] = await client.models(folder)  # [] for an unknown folder
    # Binding and validating is CPU work (a small picture per mode): off the event loop.
    checked = await asyncio.to_thread(_check_found, found, object_info, listings, settings)
    checked_gguf = await asyncio.to_thread(
        _check_found, found_gguf, object_info, listings, settings, GGUF)
    for mode, gguf_readiness in checked_gguf.items():
        if mode in checked:
            checked[mode] = replace(checked[mode], gguf_ready=gguf_readiness.ready,
                                    gguf_message=gguf_readiness.message)
    result.update(checked)
    for mode, readiness in result.items():
        if not readiness.ready:
            log.info("%s is not ready: %s", mode, readiness.message)
    return {spec.name: result[spec.name] for spec in registry if spec.name in result}


def _gguf_template(spec: ModeSpec[RequestBase], library: TemplateLibrary) -> Template | None:
    """The mode's GGUF template, when its family has GGUF files and the file exists."""
    if spec.family.gguf is None:
        return None
    try:
        if GGUF not in library.variants(spec.name):
            return None
        return library.get(spec.name, GGUF, required=spec.roles)
    except TemplateError as exc:
        log.warning("%s: its GGUF template is unusable: %s", spec.name, exc.message)
        return None


def _check_found(
    found: Mapping[str, tuple[ModeSpec[RequestBase], Template, Requirements]],
    object_info: Mapping[str, Any],
    listings: Mapping[str, list[str]],
    settings: Settings,
    variant: str | None = None,
) -> dict[str, ModeReadiness]:
    inputs = WarmupInputs.sample()
    out: dict[str, ModeReadiness] = {}
    for mode, (spec, template, reqs) in found.items():
        readiness = check_ready(reqs, object_info, listings)
        if not readiness.ready:
            out[mode] = ModeReadiness(False, readiness.message)
        else:
            problem = validation_problem(spec, template, object_info, settings, inputs,
                                         variant)
            out[mode] = ModeReadiness(problem is None, f"not ready: {problem}" if problem else "")
    return out


def validation_problem(
    spec: ModeSpec[RequestBase],
    template: Template,
    object_info: Mapping[str, Any],
    settings: Settings,
    inputs: WarmupInputs,
    variant: str | None = None,
) -> str | None:
    """Why ComfyUI would reject this mode's template as a job binds it (None: it would not)."""
    graph = _bound(spec, template, settings, inputs, variant)
    if isinstance(graph, str):
        return graph
    checked = validate_prompt(graph, object_info)
    if checked.ok and not checked.node_errors:
        return None
    return f"ComfyUI would reject {template.path.name}: {_rejection(checked.body)}"


# Per template (a library re-reads a changed file into a new Template): its placeholder job.
_BOUND: weakref.WeakKeyDictionary[Template, tuple[object, Settings, dict[str, Any] | str]] = (
    weakref.WeakKeyDictionary()
)


def _bound(
    spec: ModeSpec[RequestBase], template: Template, settings: Settings, inputs: WarmupInputs,
    variant: str | None = None,
) -> dict[str, Any] | str:
    """The template bound as the mode's warm-up job would bind it, or why it cannot be."""
    cached = _BOUND.get(template)
    if cached is not None and cached[0] is spec and cached[1] == settings:
        return cached[2]
    small = replace(settings, max_sampling_pixels=PLACEHOLDER_PIXELS)
    graph: dict[str, Any] | str
    try:
        prepared = spec.operation.prepare(replace(spec.warmup(inputs), variant=variant), small)
        files = dict.fromkeys(prepared.uploads, PLACEHOLDER_FILE)
        graph = bind(template, prepared.bindings(template.roles, files), nonce="preflight")
    except (TemplateError, InvalidRequest) as exc:
        graph = exc.message
    except Exception as exc:  # one mode's bug must not take every mode's readiness with it
        log.exception("%s: the placeholder job could not be prepared", spec.name)
        graph = f"the studio could not prepare a job for it ({type(exc).__name__}: {exc})"
    _BOUND[template] = (spec, settings, graph)
    return graph


def _rejection(body: Mapping[str, Any]) -> str:
    """ComfyUI's 400 body in one line: each failing node, its input and what is wrong."""
    parts = []
    for node_id, entry in (body.get("node_errors") or {}).items():
        for error in entry.get("errors", []):
            name = (error.get("extra_info") or {}).get("input_name")
            where = f"node {node_id} ({entry.get('class_type')})" + (f" '{name}'" if name else "")
            parts.append(f"{where}: {error.get('details') or error.get('message')}")
    if parts:
        return "; ".join(parts)
    error = body.get("error") or {}
    return str(error.get("message") or "invalid prompt")

"""ComfyUI errors → `Failed` events with a message a person can act on.

What to install (a model file and where it goes, or a node pack), which node failed, and
for out-of-memory the operations guide's remedies in its order. A missing model file and a
missing node pack are both `missing_models` ("the server lacks something": 424 on the API).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import PurePath
from typing import Any

from backend.comfy import (
    ComfyError,
    ComfyExecutionFailed,
    ComfyInterrupted,
    ComfyPromptLost,
    ComfyRejected,
    ComfyTimeout,
    ComfyUnreachable,
    NodeProblem,
)
from backend.events import Failed
from backend.progress import node_label
from backend.settings import ModelFiles
from backend.workflows.requirements import DISK_FOLDERS, MODEL_INPUTS, model_folder

# Loader inputs whose choices are models a node pack downloads itself (not folder files).
PACK_MODEL_INPUTS: dict[tuple[str, str], str] = {
    ("DownloadAndLoadFlorence2Model", "model"): "florence2",
    ("DownloadAndLoadSAM2Model", "model"): "sam2",
    ("BiRefNetRMBG", "model"): "birefnet",
}

OOM_REMEDIES = (
    "lower the resolution (1024×1024 → 768×768 saves about 30% of the peak)",
    "reduce concurrency (one job at a time, batch size 1)",
    "reduce other services' GPU memory (e.g. vLLM's --gpu-memory-utilization)",
    "pin ComfyUI to another GPU (CUDA_VISIBLE_DEVICES in its service)",
    "use the GGUF Q4 model variants (~10 GB instead of ~20 GB per UNet)",
)

STOPPED = "Stopped."
LOST = "ComfyUI restarted and lost the queue; run it again."
# No address: the UI and the API show this to people who need not know where ComfyUI runs
# (the detail keeps it for the log).
UNREACHABLE = "ComfyUI is not reachable — is it running? ({reason})"


def oom_message(where: str, size: tuple[int, int] | None, *, cpu: bool = False,
                remedies: str | None = None) -> str:
    """Which node ran out of memory at what size, then what to do: `remedies` when the
    studio knows this device (backend/operations/variant.py: free memory now, what each
    remedy saves), else the guide's list. On a CPU device the memory is RAM."""
    at = f" at {size[0]}×{size[1]}" if size else ""
    memory = "RAM" if cpu else "GPU memory"
    if remedies is None:
        steps = "; ".join(f"{i}) {r}" for i, r in enumerate(OOM_REMEDIES, start=1))
        remedies = f"In this order, try: {steps}."
    return f"ComfyUI ran out of {memory} in {where}{at}. {remedies}"


@dataclass(frozen=True)
class OomAdvice:
    """What the studio knows about the device when a job ran out of memory."""

    cpu: bool = False
    remedies: str | None = None


def _describe_node(
    node_id: str | None, class_type: str | None, graph: Mapping[str, Any] | None
) -> str:
    """"node 7 'Sampler' (KSampler)": the id, the title people see in ComfyUI, the class."""
    where = f"node {node_id}" if node_id else "a node"
    if node_id and graph and node_id in graph:
        label = node_label(graph[node_id])
        if label and label != class_type:
            where += f" '{label}'"
    return f"{where} ({class_type})" if class_type else where


def _node_failed(where: str, exc: ComfyExecutionFailed) -> str:
    """Which node, what it raised (first line; the rest is in the detail), where to look."""
    kind = exc.exception_type.rsplit(".", 1)[-1] or "an error"
    what = (exc.exception_message.splitlines() or [""])[0].strip().rstrip(".")
    raised = f"{kind}: {what}" if what else kind
    return (f"ComfyUI failed in {where} with {raised}. ComfyUI's log has the full error; "
            "run it again, and if it fails the same way check that node's inputs and models.")


def _setting_for(value: object, models: ModelFiles) -> str | None:
    """The STUDIO_MODEL_* variable that named this file, if any."""
    for name, file in asdict(models).items():
        if file == value:
            return f"STUDIO_MODEL_{name.upper()}"
    return None


def _missing_model(
    problem: NodeProblem, graph: Mapping[str, Any] | None, models: ModelFiles
) -> str | None:
    """A sentence when the problem is a model the server lacks, else None."""
    if problem.type != "value_not_in_list" or not problem.class_type or not problem.input_name:
        return None
    key = (problem.class_type, problem.input_name)
    node = _describe_node(problem.node_id, problem.class_type, graph)
    value = problem.received
    if key in MODEL_INPUTS:
        listed = model_folder(*key, value) or MODEL_INPUTS[key]
        folder = DISK_FOLDERS.get(listed, listed)
        setting = _setting_for(value, models)
        alt = f", or set {setting} to a file that is there" if setting else ""
        return (
            f"The model file '{value}' is not on the ComfyUI server ({node}). "
            f"Put it in ComfyUI's models/{folder}/ folder{alt}."
        )
    if key in PACK_MODEL_INPUTS:
        setting = f"STUDIO_MODEL_{PACK_MODEL_INPUTS[key].upper()}"
        offered = ", ".join(str(c) for c in (problem.choices or ())[:6])
        return (
            f"The {problem.class_type} node does not offer the model '{value}' ({node}); "
            f"set {setting} to one it offers ({offered}) or update its node pack."
        )
    return None


def from_comfy_error(
    exc: ComfyError,
    *,
    graph: Mapping[str, Any] | None = None,
    template: str | None = None,
    work_size: tuple[int, int] | None = None,
    models: ModelFiles | None = None,
    oom: OomAdvice | None = None,
) -> Failed:
    """Map every ComfyError to a Failed event (never raises)."""
    detail = exc.detail or ""
    if template:
        detail = f"template {template}\n{detail}".strip()
    if isinstance(exc, ComfyRejected):
        for problem in exc.problems:
            sentence = _missing_model(problem, graph, models or ModelFiles())
            if sentence:
                return Failed(sentence, detail, "missing_models")
        # The file name only: people see this; the detail has the server's full path.
        where = f" (template {PurePath(template).name})" if template else ""
        if exc.error_type == "missing_node_type" or exc.missing_class:
            # A node pack the server lacks is, like a model file, "install something on the
            # ComfyUI server": the same kind (424 on the API); the message names the pack.
            return Failed(f"{exc.message}{where}", detail, "missing_models")
        return Failed(f"{exc.message}{where}", detail, "rejected")
    if isinstance(exc, ComfyExecutionFailed):
        where = _describe_node(exc.node_id, exc.node_type, graph)
        if exc.is_oom:
            advice = oom or OomAdvice()
            return Failed(oom_message(where, work_size, cpu=advice.cpu, remedies=advice.remedies),
                          detail, "out_of_memory")
        if "FileNotFoundError" in exc.exception_type and "Loader" in (exc.node_type or ""):
            return Failed(
                f"A model file could not be found when {where} loaded it: "
                f"{exc.exception_message}. Put the file in ComfyUI's models folder.",
                detail, "missing_models",
            )
        return Failed(_node_failed(where, exc), detail, "execution")
    if isinstance(exc, ComfyInterrupted):
        return Failed(STOPPED, detail, "interrupted")
    if isinstance(exc, ComfyTimeout):
        return Failed(exc.message, detail, "timeout")
    if isinstance(exc, ComfyPromptLost):
        return Failed(LOST, detail, "lost")
    if isinstance(exc, ComfyUnreachable):
        return Failed(UNREACHABLE.format(reason=exc.reason), f"{exc.url}: {detail}",
                      "unreachable")
    return Failed(exc.message, detail, "execution")

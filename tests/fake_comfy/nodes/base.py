"""The contract between the fake's executor and its node implementations.

Data crossing node boundaries mirrors ComfyUI's own shapes so the graphs mean the same thing:
IMAGE = float32 numpy array (B, H, W, 3) in 0..1; MASK = float32 (B, H, W) in 0..1 (1 = change);
LATENT = dict with "samples" (B, 16, H/8, W/8) plus fake-only keys the simulated sampler and VAE
agree on; MODEL / CLIP / VAE / CONDITIONING = small frozen descriptions (see nodes/*.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from PIL import Image


@dataclass
class NodeOutput:
    """What a node returns: one value per RETURN_TYPES entry, and `ui` for output nodes
    (e.g. {"images": [{"filename", "subfolder", "type"}]}), which becomes the `executed` message."""

    values: tuple[Any, ...] = ()
    ui: dict[str, Any] | None = None


class NodeFailure(Exception):
    """Raised by a node to fail the prompt with an `execution_error` whose
    exception_type / exception_message are these (as ComfyUI reports Python exceptions)."""

    def __init__(self, exception_type: str, message: str) -> None:
        super().__init__(message)
        self.exception_type = exception_type
        self.message = message


class ExecContext(Protocol):
    """Provided by the executor to every node call."""

    prompt_id: str
    node_id: str
    class_type: str
    input_dir: Path
    output_dir: Path
    temp_dir: Path
    step_delay: float          # seconds per sampler step (configurable, 0 in most tests)
    previews: bool             # samplers send a preview per step (`--preview-method` not none)

    async def progress(self, value: int, maximum: int, preview: Image.Image | None = None) -> None:
        """Send `progress` + `progress_state`, and a binary preview frame when given one.
        Raises the executor's interrupt exception if an interrupt was requested."""

    async def load_model(self, folder: str, name: str, vram_gb: float) -> None:
        """Account a model as resident in VRAM: waits the model-load delay when it was not
        resident, evicts another diffusion model when a new one loads, and raises the
        configured out-of-memory fault. `folder` is the ComfyUI model folder (or a pack name)."""

    def model_files(self, folder: str) -> list[str]:
        """The file names the fake lists for a model folder."""


NodeImpl = Callable[[ExecContext, dict[str, Any]], Awaitable[NodeOutput]]


@dataclass
class Registry:
    impls: dict[str, NodeImpl] = field(default_factory=dict)

    def register(self, *class_types: str) -> Callable[[NodeImpl], NodeImpl]:
        def decorate(fn: NodeImpl) -> NodeImpl:
            for class_type in class_types:
                self.impls[class_type] = fn
            return fn

        return decorate


REGISTRY = Registry()
register = REGISTRY.register

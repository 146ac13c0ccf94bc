"""Stand-in outputs for node classes without a fake implementation, so any valid graph runs.

IMAGE / MASK / LATENT pass the node's first input of that kind through (or a small neutral
one); other types become a `Placeholder` naming where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .nodes.base import NodeOutput


@dataclass(frozen=True)
class Placeholder:
    type: str
    class_type: str
    node_id: str


def _first(inputs: dict[str, Any], test: Any) -> Any:
    return next((v for v in inputs.values() if test(v)), None)


def _is_image(v: Any) -> bool:
    return isinstance(v, np.ndarray) and v.ndim == 4


def _is_mask(v: Any) -> bool:
    return isinstance(v, np.ndarray) and v.ndim == 3


def _is_latent(v: Any) -> bool:
    return isinstance(v, dict) and "samples" in v


def placeholder_value(return_type: Any, inputs: dict[str, Any], class_type: str,
                      node_id: str) -> Any:
    if return_type == "IMAGE":
        found = _first(inputs, _is_image)
        return found if found is not None else np.full((1, 64, 64, 3), 0.5, dtype=np.float32)
    if return_type == "MASK":
        found = _first(inputs, _is_mask)
        return found if found is not None else np.zeros((1, 64, 64), dtype=np.float32)
    if return_type == "LATENT":
        found = _first(inputs, _is_latent)
        return found if found is not None else {"samples": np.zeros((1, 16, 8, 8), np.float32)}
    simple = {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}
    if isinstance(return_type, str) and return_type in simple:
        return simple[return_type]
    return Placeholder(str(return_type), class_type, node_id)


def placeholder_output(return_types: list[Any], inputs: dict[str, Any], class_type: str,
                       node_id: str) -> NodeOutput:
    return NodeOutput(tuple(placeholder_value(t, inputs, class_type, node_id)
                            for t in return_types))

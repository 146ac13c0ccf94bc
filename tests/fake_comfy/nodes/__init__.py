"""Node implementations of the fake ComfyUI, registered in `base.REGISTRY`.

`core_io` (loading, saving, previews, ImageScale, ImageInvert) always loads; the mode modules
load when present, so the fake keeps working while they are being written.
"""

from __future__ import annotations

import importlib
import importlib.util

from . import core_io  # noqa: F401 - registers the core nodes
from .base import REGISTRY, ExecContext, NodeFailure, NodeImpl, NodeOutput, register

OPTIONAL_MODULES = ("models", "sampling", "image_ops", "masks", "segmentation")

for _name in OPTIONAL_MODULES:
    if importlib.util.find_spec(f"{__name__}.{_name}") is not None:
        importlib.import_module(f"{__name__}.{_name}")

__all__ = ["REGISTRY", "ExecContext", "NodeFailure", "NodeImpl", "NodeOutput", "register"]

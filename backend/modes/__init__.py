"""The modes: each built-in mode is declared once, in its own module here (`SPEC`), and
`REGISTRY` holds them in tab order. Every table the studio needs (settings, template roles,
readiness, metrics labels, API models, tabs, send-to buttons, warm-up) is derived from it.

A module in this folder is a mode when it defines `SPEC`; `spec` and `registry` are the
machinery. Adding a built-in mode = its template in workflows/ + one module here (+ a tab
module in ui/tabs/ only when the generic tab does not suit it); docs/modes.md walks through it.
"""

from __future__ import annotations

import importlib
import pkgutil

from backend.modes.registry import ModeRegistry
from backend.modes.spec import (
    ApiInput,
    ApiRoute,
    ApiSpec,
    InputKind,
    ModeInput,
    ModeSpec,
    SendTo,
    WarmupInputs,
)

MACHINERY = frozenset({"spec", "registry"})


def builtin_registry() -> ModeRegistry:
    """A fresh registry of the modes declared in this folder."""
    registry = ModeRegistry()
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name in MACHINERY or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        spec = vars(module).get("SPEC")
        if not isinstance(spec, ModeSpec):
            raise TypeError(f"backend/modes/{info.name}.py declares no SPEC (a ModeSpec)")
        registry.register(spec)
    return registry


# The process's modes. A studio takes a registry explicitly (build_context(registry=…)), so
# tests and, later, workflow apps can add modes without touching this one.
REGISTRY = builtin_registry()

__all__ = [
    "REGISTRY",
    "ApiInput",
    "ApiRoute",
    "ApiSpec",
    "InputKind",
    "ModeInput",
    "ModeRegistry",
    "ModeSpec",
    "SendTo",
    "WarmupInputs",
    "builtin_registry",
]

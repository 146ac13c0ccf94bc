"""Reading ComfyUI's raw JSON without trusting its shape: a field that is missing or of the
wrong type reads as empty, so a newer (or broken) server never crashes a parser."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def as_mapping(value: Any) -> Mapping[str, Any]:
    """`value` if it is a JSON object, else {}."""
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> list[Any]:
    """`value` if it is a JSON array, else []."""
    return value if isinstance(value, list) else []

"""`ModeRegistry`: the one place that knows which modes exist, in tab order.

Modes are registered and unregistered at runtime (tests now, workflow apps later); readers get
an immutable snapshot, so a Gradio worker thread iterating it never sees a half-made change.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar, cast

from backend.modes.spec import ApiRoute, InputKind, ModeSpec
from backend.operations.base import Operation
from backend.requests import RequestBase
from backend.workflows.roles import is_role

R = TypeVar("R", bound=RequestBase)
# Names become file names (workflows/<name>.json), element ids and metric labels.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]*$")
PICTURE_KINDS = frozenset({InputKind.IMAGE, InputKind.IMAGES, InputKind.MASK})


class ModeRegistry:
    def __init__(self, specs: Iterable[ModeSpec[RequestBase]] = ()) -> None:
        self._lock = threading.Lock()
        self._specs: tuple[ModeSpec[RequestBase], ...] = ()
        for spec in specs:
            self.register(spec)

    def register(self, spec: ModeSpec[R]) -> None:
        """Add a mode; a name already taken or a role no template can carry is an error."""
        if not NAME_PATTERN.match(spec.name):
            raise ValueError(f"mode name {spec.name!r}: use lowercase letters, digits, _ and -")
        unknown = sorted(r for r in spec.roles if not is_role(r))
        if unknown:
            raise ValueError(f"mode {spec.name!r} needs unknown roles: {', '.join(unknown)}")
        if spec.request_type.mode != spec.name:
            raise ValueError(
                f"mode {spec.name!r}: {spec.request_type.__name__}.mode is "
                f"{spec.request_type.mode!r}"
            )
        with self._lock:
            if any(s.name == spec.name for s in self._specs):
                raise ValueError(f"mode {spec.name!r} is already registered")
            # Sound because spec_for() hands a spec only requests of its own request_type.
            erased = cast("ModeSpec[RequestBase]", spec)
            self._specs = tuple(sorted((*self._specs, erased), key=lambda s: (s.order, s.name)))

    def unregister(self, name: str) -> None:
        with self._lock:
            self._specs = tuple(s for s in self._specs if s.name != name)

    def copy(self) -> ModeRegistry:
        """An independent registry with the same modes (a test adds its own to it)."""
        return ModeRegistry(self._specs)

    # -- reading -----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[ModeSpec[RequestBase]]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, name: object) -> bool:
        return any(s.name == name for s in self._specs)

    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self._specs)

    def find(self, name: str | None) -> ModeSpec[RequestBase] | None:
        return next((s for s in self._specs if s.name == name), None)

    def get(self, name: str) -> ModeSpec[RequestBase]:
        spec = self.find(name)
        if spec is None:
            raise KeyError(f"unknown mode {name!r}; modes: {', '.join(self.names())}")
        return spec

    def spec_for(self, request: object) -> ModeSpec[RequestBase] | None:
        """The mode that runs `request` (None for anything that is not one of its requests)."""
        if not isinstance(request, RequestBase):
            return None
        spec = self.find(request.mode)
        return spec if spec is not None and isinstance(request, spec.request_type) else None

    def operation_for(self, request: RequestBase) -> Operation[RequestBase]:
        spec = self.spec_for(request)
        if spec is None:
            raise KeyError(f"{type(request).__name__} is not a request of a registered mode")
        return spec.operation

    def parameter_names(self) -> frozenset[str]:
        """What a studio PNG's parameters may carry: the mode, the result's size, the common
        request fields and every mode's declared inputs but its pictures."""
        declared = {i.name for s in self._specs for i in s.inputs if i.kind not in PICTURE_KINDS}
        common = {f.name for f in dataclasses.fields(RequestBase)}
        return frozenset({"mode", "width", "height", *common, *declared})

    def on_route(self, route: ApiRoute) -> list[ModeSpec[RequestBase]]:
        """The modes an API route serves, in tab order (the first one is the route's default)."""
        return [s for s in self._specs if s.api is not None and s.api.route is route]

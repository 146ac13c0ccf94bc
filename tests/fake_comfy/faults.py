"""Faults a test can switch on: OOM or another error at a node, HTTP 500s, a stalled socket.

(Dropping every websocket and being down are actions, see `FakeComfy.drop_websockets()` and
`FakeComfy.stop()` / `down()`.)
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

OOM_TYPE = "torch.OutOfMemoryError"
OOM_MESSAGE = (
    "Allocation on device 0 would exceed allowed memory. (out of memory)\n"
    "Currently allocated     : 45.21 GiB\n"
    "Requested               : 3.52 GiB\n"
    "Device limit            : 47.50 GiB\n"
    "Free (according to CUDA): 19.94 MiB\n"
    "PyTorch limit (set by user-supplied memory fraction)\n"
    "                        : 17179869184.00 GiB"
)
# Appended by ComfyUI to any OOM's message (after a newline, as it does for every error).
OOM_TIPS = (
    "This error means you ran out of memory on your GPU.\n\n"
    "TIPS: If the workflow worked before you might have accidentally set the batch_size to a "
    "large number."
)


@dataclass
class NodeFault:
    """Fails the node whose id, class or model file name is `target`."""

    target: str
    exception_type: str
    message: str
    times: int | None = None     # None: every time; n: the next n matches, then disarmed

    def matches(self, *names: str | None) -> bool:
        return self.target in names and (self.times is None or self.times > 0)


class Faults:
    """Thread-safe switches; the server and executor ask them at the right moments."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self.node_faults: list[NodeFault] = []
            self.http_500: set[str] | None = None     # None: off; {"*"}: every route
            self.http_500_times: int | None = None
            self.ws_stalled = False

    # --- node faults ---------------------------------------------------------------------

    def add_node_fault(self, fault: NodeFault) -> None:
        with self._lock:
            self.node_faults.append(fault)

    def oom_at(self, target: str, times: int | None = None) -> None:
        self.add_node_fault(NodeFault(target, OOM_TYPE, OOM_MESSAGE, times))

    def error_at(self, target: str, exception_type: str = "RuntimeError",
                 message: str = "Simulated failure", times: int | None = None) -> None:
        self.add_node_fault(NodeFault(target, exception_type, message, times))

    def take_node_fault(self, *names: str | None) -> NodeFault | None:
        """The armed fault for this node / model, consuming one of its `times`."""
        with self._lock:
            for fault in self.node_faults:
                if fault.matches(*names):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    # --- HTTP ----------------------------------------------------------------------------

    def fail_http(self, routes: list[str] | None = None, times: int | None = None) -> None:
        """Answer 500 with an empty body on these routes ("/prompt", "GET /queue", ...; the
        /api/ twin included), or on every route when `routes` is empty or None."""
        with self._lock:
            self.http_500 = set(routes) if routes else {"*"}
            self.http_500_times = times

    def http_should_fail(self, method: str, route: str) -> bool:
        with self._lock:
            chosen = self.http_500
            if not chosen or route.startswith("/__fake__"):
                return False
            if "*" not in chosen and route not in chosen and f"{method} {route}" not in chosen:
                return False
            if self.http_500_times is not None:
                if self.http_500_times <= 0:
                    return False
                self.http_500_times -= 1
            return True

    # --- reporting -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "node_faults": [asdict(f) for f in self.node_faults],
                "http_500": sorted(self.http_500) if self.http_500 else None,
                "http_500_times": self.http_500_times,
                "ws_stalled": self.ws_stalled,
            }

    def update(self, data: dict[str, Any]) -> None:
        """Apply a `/__fake__/faults` body (see the package docstring)."""
        if data.get("oom_at"):
            self.oom_at(str(data["oom_at"]), data.get("oom_times"))
        if data.get("error_at"):
            self.error_at(str(data["error_at"]), data.get("error_type", "RuntimeError"),
                          data.get("error_message", "Simulated failure"), data.get("error_times"))
        if "http_500" in data:
            routes = data["http_500"]
            if routes is None or routes is False:
                with self._lock:
                    self.http_500 = None
            else:
                self.fail_http(None if routes in ("*", True) else list(routes),
                               data.get("http_500_times"))
        if "ws_stalled" in data:
            self.ws_stalled = bool(data["ws_stalled"])

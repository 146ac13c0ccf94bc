"""Progress of one job from ComfyUI's messages, weighted like krita-ai-diffusion:
20% for nodes done, 80% for sampler steps (a graph without a sampler is all nodes).

One tracker can follow several prompts of the same graph (region edit's two passes): nodes
are counted once by id, so what the second pass takes from the cache does not count twice.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from backend.events import Progress

NODE_WEIGHT = 0.2
_ROLE_TAG = re.compile(r"\s*#[a-z][a-z0-9_]*")


def node_label(node: Mapping[str, Any]) -> str:
    """The node's title without its #role tags, or its class."""
    title = str((node.get("_meta") or {}).get("title") or "")
    return _ROLE_TAG.sub("", title).strip() or str(node.get("class_type", ""))


def is_sampler(node: Mapping[str, Any]) -> bool:
    return "Sampler" in str(node.get("class_type", ""))


class ProgressTracker:
    def __init__(
        self, graph: Mapping[str, Mapping[str, Any]], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._labels = {node_id: node_label(node) for node_id, node in graph.items()}
        # Expected steps per sampler until its own progress messages say otherwise.
        self._step_max: dict[str, float] = {}
        for node_id, node in graph.items():
            if is_sampler(node):
                steps = (node.get("inputs") or {}).get("steps")
                self._step_max[node_id] = float(steps) if isinstance(steps, int) else 1.0
        self._step_value: dict[str, float] = dict.fromkeys(self._step_max, 0.0)
        self._done: set[str] = set()
        self._current: str | None = None
        self._current_part = 0.0  # progress inside a non-sampler node that reports it
        self._rate_origin: tuple[float, float] | None = None  # (time, steps done) at first step
        self._last_fraction = 0.0

    # --- feeding ----------------------------------------------------------------------

    def cached(self, nodes: Iterable[str]) -> Progress:
        for node_id in nodes:
            self._finish_node(node_id)
        return self.snapshot()

    def executing(self, node_id: str | None) -> Progress:
        if self._current is not None:
            self._finish_node(self._current)
        self._current = node_id if node_id in self._labels else None
        self._current_part = 0.0
        return self.snapshot()

    def progress(self, node_id: str | None, value: float, maximum: float) -> Progress:
        if node_id is not None and node_id in self._labels:
            self._current = node_id
        node_id = self._current
        if node_id in self._step_max and maximum > 0:
            self._step_max[node_id] = maximum
            self._step_value[node_id] = min(value, maximum)
            if self._rate_origin is None:
                self._rate_origin = (self._clock(), self._steps_done())
        elif maximum > 0:
            self._current_part = min(value / maximum, 1.0)
        return self.snapshot()

    def _finish_node(self, node_id: str) -> None:
        if node_id not in self._labels:
            return
        self._done.add(node_id)
        if node_id in self._step_max:
            self._step_value[node_id] = self._step_max[node_id]

    # --- reading ----------------------------------------------------------------------

    def _steps_done(self) -> float:
        return sum(self._step_value.values())

    @property
    def fraction(self) -> float:
        total_nodes = max(len(self._labels), 1)
        running = self._current_part if self._current not in self._done else 0.0
        nodes = min((len(self._done) + running) / total_nodes, 1.0)
        if not self._step_max:
            value = nodes
        else:
            steps = self._steps_done() / max(sum(self._step_max.values()), 1.0)
            value = NODE_WEIGHT * nodes + (1 - NODE_WEIGHT) * steps
        # Never go backwards (a sampler's real step count may replace our estimate).
        self._last_fraction = max(self._last_fraction, min(value, 1.0))
        return self._last_fraction

    def eta_s(self) -> float | None:
        if self._rate_origin is None:
            return None
        started, steps_then = self._rate_origin
        elapsed = self._clock() - started
        steps = self._steps_done() - steps_then
        if elapsed <= 0 or steps <= 0:
            return None
        remaining = sum(self._step_max.values()) - self._steps_done()
        return max(remaining, 0.0) / (steps / elapsed)

    def snapshot(self) -> Progress:
        node_id = self._current
        step = total = None
        if node_id in self._step_max and node_id not in self._done:
            step, total = int(self._step_value[node_id]), int(self._step_max[node_id])
        return Progress(
            fraction=self.fraction,
            step=step,
            total=total,
            node_label=self._labels.get(node_id, "") if node_id else "",
            eta_s=self.eta_s(),
        )

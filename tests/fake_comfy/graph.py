"""Graph helpers mirroring ComfyUI's executor: cache keys and the order nodes run in."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any


def is_link(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], int))


def cache_keys(prompt: Mapping[str, Any], changed: Callable[[str, dict[str, Any]], Any]
               ) -> dict[str, str]:
    """A key per node: class + `IS_CHANGED` + inputs, links replaced by their upstream's key.
    Like ComfyUI, the node id is not part of it: equal work anywhere is served from cache."""
    keys: dict[str, str] = {}
    visiting: set[str] = set()

    def key(node_id: str) -> str:
        if node_id in keys:
            return keys[node_id]
        node = prompt.get(node_id)
        if not isinstance(node, Mapping) or node_id in visiting:
            return f"missing:{node_id}"
        visiting.add(node_id)
        inputs = node.get("inputs", {}) or {}
        parts: list[Any] = [node.get("class_type"), repr(changed(node_id, inputs))]
        for name in sorted(inputs):
            value = inputs[name]
            if is_link(value):
                parts.append((name, "link", key(value[0]), value[1]))
            else:
                parts.append((name, json.dumps(value, sort_keys=True, default=str)))
        visiting.discard(node_id)
        keys[node_id] = hashlib.sha1(repr(parts).encode()).hexdigest()
        return keys[node_id]

    for node_id in prompt:
        key(node_id)
    return keys


class ExecutionList:
    """ComfyUI's TopologicalSort/ExecutionList: which node runs next.

    Nodes are added from the outputs depth-first (cached upstream nodes are not added at
    all); among ready nodes an output node goes first, then one that feeds an output, then one
    two steps away, else the first added.
    """

    def __init__(self, prompt: Mapping[str, Any], is_cached: Callable[[str], bool],
                 is_output: Callable[[str], bool]) -> None:
        self.prompt = prompt
        self.is_cached = is_cached
        self.is_output = is_output
        self.pending: dict[str, bool] = {}
        self.block_count: dict[str, int] = {}
        self.blocking: dict[str, dict[str, dict[int, bool]]] = {}

    def add_node(self, node_id: str) -> None:
        stack = [node_id]
        links: list[tuple[str, int, str]] = []
        while stack:
            unique_id = stack.pop()
            if unique_id in self.pending:
                continue
            self.pending[unique_id] = True
            self.block_count[unique_id] = 0
            self.blocking[unique_id] = {}
            for value in (self.prompt[unique_id].get("inputs", {}) or {}).values():
                if is_link(value):
                    from_id, socket = value
                    if not self.is_cached(from_id):
                        stack.append(from_id)
                    links.append((from_id, socket, unique_id))
        for from_id, socket, to_id in links:
            if not self.is_cached(from_id):
                self.add_node(from_id)
                if to_id not in self.blocking[from_id]:
                    self.blocking[from_id][to_id] = {}
                    self.block_count[to_id] += 1
                self.blocking[from_id][to_id][socket] = True

    def is_empty(self) -> bool:
        return not self.pending

    def next_node(self) -> str:
        ready = [n for n in self.pending if self.block_count[n] == 0]
        if not ready:
            raise RuntimeError("Dependency cycle detected")
        for node_id in ready:
            if self.is_output(node_id):
                return node_id
        for node_id in ready:
            if any(self.is_output(b) for b in self.blocking[node_id]):
                return node_id
        for node_id in ready:
            for blocked in self.blocking[node_id]:
                if any(self.is_output(b) for b in self.blocking.get(blocked, {})):
                    return node_id
        return ready[0]

    def complete(self, node_id: str) -> None:
        self.pending.pop(node_id, None)
        for blocked in self.blocking.pop(node_id, {}):
            self.block_count[blocked] -= 1

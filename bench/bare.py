"""The baseline: a bare ComfyUI client, what any script does without the studio — POST /prompt
with our own prompt_id and client_id, read the websocket until execution_success for that
prompt, GET /view of the output image. One httpx client and one socket, reused across jobs."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect


class BareClient:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = uuid.uuid4().hex
        self._http: httpx.AsyncClient | None = None
        self._ws: ClientConnection | None = None

    async def __aenter__(self) -> BareClient:
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=60.0)
        ws_url = self.base_url.replace("http", "ws", 1) + f"/ws?clientId={self.client_id}"
        self._ws = await connect(ws_url, max_size=None, compression=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.aclose()

    async def run(self, graph: dict[str, Any]) -> bytes:
        """Submit, wait for execution_success, fetch the first output image's bytes."""
        assert self._http is not None and self._ws is not None
        prompt_id = str(uuid.uuid4())
        body = {"prompt": graph, "client_id": self.client_id, "prompt_id": prompt_id}
        (await self._http.post("/prompt", json=body)).raise_for_status()
        images: list[dict[str, str]] = []
        async for frame in self._ws:
            if isinstance(frame, bytes):
                continue                      # sampler previews
            message = json.loads(frame)
            data = message.get("data") or {}
            if data.get("prompt_id") != prompt_id:
                continue
            kind = message.get("type")
            if kind == "executed":
                images += (data.get("output") or {}).get("images", [])
            elif kind == "execution_success":
                break
            elif kind in ("execution_error", "execution_interrupted"):
                raise RuntimeError(f"{kind}: {data.get('exception_message', '')}")
        response = await self._http.get("/view", params=images[0])
        response.raise_for_status()
        return response.content


def variant_of(workflow: dict[str, Any], seed: int) -> dict[str, Any]:
    """The studio's submitted graph with a new sampler seed and a new output nonce, so ComfyUI
    runs it through (same work as the studio's next job) instead of serving its cache."""
    graph = copy.deepcopy(workflow)
    nonce = uuid.uuid4().hex[:12]
    for node in graph.values():
        inputs = node.get("inputs", {})
        if "seed" in inputs and not isinstance(inputs["seed"], list):
            inputs["seed"] = seed
        if node.get("class_type") == "SaveImage":
            prefix = str(inputs.get("filename_prefix", "bench"))
            inputs["filename_prefix"] = f"{prefix.rsplit('-', 1)[0]}-{nonce}"
    return graph

"""Run the Generate tab's Run button over Gradio's queue protocol, as the browser does.

gradio_client cannot be used: the tab's run event is registered with
`api_visibility="private"` (ui/widgets.py `wire_run`), so `/gradio_api/info` lists no named
endpoint and gradio_client refuses private ones. The browser's own protocol still works:
POST /gradio_api/queue/join with the event's fn_index, then read the session's SSE stream
(/gradio_api/queue/data) until process_completed, then GET the result image's URL.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

MODE = "generate"


@dataclass(frozen=True)
class RunEndpoint:
    fn_index: int
    trigger_id: int
    input_ids: tuple[int, ...]
    defaults: tuple[Any, ...]
    elem_ids: tuple[str | None, ...]
    result_index: int              # position of the #generate_result image among the outputs


def find_run_endpoint(config: dict[str, Any], mode: str = MODE) -> RunEndpoint:
    """The click dependency of the `{mode}_run` button, from the app's /config."""
    components = {c["id"]: c for c in config["components"]}
    elem = {cid: (c.get("props") or {}).get("elem_id") for cid, c in components.items()}
    run_id = next(cid for cid, e in elem.items() if e == f"{mode}_run")
    for index, dep in enumerate(config["dependencies"]):
        if [run_id, "click"] in [list(t) for t in dep.get("targets", [])]:
            inputs = tuple(dep["inputs"])
            outputs = list(dep["outputs"])
            result = next(cid for cid in outputs if elem.get(cid) == f"{mode}_result")
            return RunEndpoint(
                fn_index=int(dep.get("id", index)),
                trigger_id=run_id,
                input_ids=inputs,
                defaults=tuple((components[cid].get("props") or {}).get("value")
                               for cid in inputs),
                elem_ids=tuple(elem.get(cid) for cid in inputs),
                result_index=outputs.index(result),
            )
    raise LookupError(f"no click event on #{mode}_run in the app's config")


class GradioRunner:
    """One Generate run per call, each in a fresh session (a newly opened page)."""

    def __init__(self, http: httpx.AsyncClient, endpoint: RunEndpoint) -> None:
        self.http = http
        self.endpoint = endpoint

    @classmethod
    async def connect(cls, http: httpx.AsyncClient) -> GradioRunner:
        config = (await http.get("/config")).raise_for_status().json()
        return cls(http, find_run_endpoint(config))

    def data(self, values: dict[str, Any]) -> list[Any]:
        """The tab's defaults with `values` (by elem_id without the mode prefix) applied."""
        out = []
        for elem_id, default in zip(self.endpoint.elem_ids, self.endpoint.defaults, strict=True):
            key = (elem_id or "").removeprefix(f"{MODE}_")
            out.append(values.get(key, default))
        return out

    async def run(self, values: dict[str, Any]) -> bytes:
        """Join the queue, wait for process_completed, fetch the result image's bytes."""
        session = uuid.uuid4().hex[:11]
        body = {"data": self.data(values), "fn_index": self.endpoint.fn_index,
                "session_hash": session, "event_data": None,
                "trigger_id": self.endpoint.trigger_id}
        (await self.http.post("/gradio_api/queue/join", json=body)).raise_for_status()
        final: dict[str, Any] | None = None
        async with self.http.stream("GET", "/gradio_api/queue/data",
                                    params={"session_hash": session}) as stream:
            async for line in stream.aiter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    final = message
                    break
        if final is None or not final.get("success"):
            raise RuntimeError(f"Gradio run failed: {final}")
        result = final["output"]["data"][self.endpoint.result_index]
        result = result.get("value", result) if isinstance(result, dict) else result
        if not isinstance(result, dict) or not result.get("url"):
            raise RuntimeError(f"no result image in the Gradio output: {str(result)[:200]}")
        return (await self.http.get(result["url"])).raise_for_status().content

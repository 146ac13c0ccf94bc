"""Run the Generate tab's Run button from outside the browser, two ways:

- `ClientRunner`: gradio_client, by fn_index. The tab's run event is registered with
  `api_visibility="private"` (ui/runner.py `wire_run`), so `/gradio_api/info` lists no named
  endpoint and gradio_client refuses it by its own client-side check, while the server runs
  it by fn_index exactly as for the page; the runner clears that flag for this one event (as
  tests/matrix/surfaces.py does).
- `QueueRunner`: the browser's own protocol with httpx — POST /gradio_api/queue/join with the
  fn_index, read the session's SSE stream (/gradio_api/queue/data) until process_completed —
  without gradio_client's own threads and polling.

Both use a fresh session per run (a newly opened page) and end by fetching the result image.
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
    is_state: tuple[bool, ...]     # gradio_client leaves gr.State inputs out
    result_index: int              # position of #generate_result among the outputs
    result_index_no_state: int     # … among the outputs that are not gr.State


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
            visible = [cid for cid in outputs if components[cid].get("type") != "state"]
            return RunEndpoint(
                fn_index=int(dep.get("id", index)),
                trigger_id=run_id,
                input_ids=inputs,
                defaults=tuple((components[cid].get("props") or {}).get("value")
                               for cid in inputs),
                elem_ids=tuple(elem.get(cid) for cid in inputs),
                is_state=tuple(components[cid].get("type") == "state" for cid in inputs),
                result_index=outputs.index(result),
                result_index_no_state=visible.index(result),
            )
    raise LookupError(f"no click event on #{mode}_run in the app's config")


def input_data(endpoint: RunEndpoint, values: dict[str, Any], *, states: bool) -> list[Any]:
    """The tab's defaults with `values` (by elem_id without the mode prefix) applied."""
    out = []
    for elem_id, default, state in zip(endpoint.elem_ids, endpoint.defaults, endpoint.is_state,
                                       strict=True):
        if state and not states:
            continue
        out.append(values.get((elem_id or "").removeprefix(f"{MODE}_"), default))
    return out


def image_url(value: Any) -> str:
    """The URL of an Image output (a FileData dict, possibly inside an update dict)."""
    value = value.get("value", value) if isinstance(value, dict) and "url" not in value else value
    if not isinstance(value, dict) or not value.get("url"):
        raise RuntimeError(f"no result image in the Gradio output: {str(value)[:200]}")
    return str(value["url"])


class ClientRunner:
    """gradio_client (sync: call from a worker thread); one Generate run per call."""

    def __init__(self, url: str) -> None:
        from gradio_client import Client

        self.client = Client(url + "/", verbose=False, download_files=False,
                             analytics_enabled=False)
        self.endpoint = find_run_endpoint(self.client.config)
        self.client.endpoints[self.endpoint.fn_index].is_valid = True   # see the module doc

    def run(self, values: dict[str, Any]) -> bytes:
        self.client.reset_session()
        job = self.client.submit(*input_data(self.endpoint, values, states=False),
                                 fn_index=self.endpoint.fn_index)
        outputs = job.result(timeout=120)
        url = image_url(outputs[self.endpoint.result_index_no_state])
        return httpx.get(url, timeout=30).raise_for_status().content

    def close(self) -> None:
        self.client.close()


class QueueRunner:
    """The browser's queue protocol over httpx; one Generate run per call."""

    def __init__(self, http: httpx.AsyncClient, endpoint: RunEndpoint) -> None:
        self.http = http
        self.endpoint = endpoint

    @classmethod
    async def connect(cls, http: httpx.AsyncClient) -> QueueRunner:
        config = (await http.get("/config")).raise_for_status().json()
        return cls(http, find_run_endpoint(config))

    async def run(self, values: dict[str, Any]) -> bytes:
        """Join the queue, wait for process_completed, fetch the result image's bytes."""
        session = uuid.uuid4().hex[:11]
        body = {"data": input_data(self.endpoint, values, states=True), "fn_index": self.endpoint.fn_index,
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
        url = image_url(final["output"]["data"][self.endpoint.result_index])
        return (await self.http.get(url)).raise_for_status().content

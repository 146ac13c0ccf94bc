"""The three surfaces the matrices drive, and the one rule every message must meet.

- `serve(app)`: the real app (`app.create_app`) in a uvicorn thread on a free port.
- `UISession`: one Gradio session (its own session hash) driving a tab through `gradio_client`
  the way the page does: Run's handler hands the job in, then the page's follower streams it
  until it ends, then the tab's `landed` handler shows the result and the history refreshes
  (ui/runner.py, ui/follow.py). The handlers are `api_visibility="private"`: hidden from
  /gradio_api/info, and gradio_client refuses them by its own client-side check, while the
  server runs them by fn_index exactly as it does for the page. So the session clears that
  client-side flag for the handlers it calls.
- `assert_actionable(text)`: a sentence a person can act on, with no traceback and (for the
  UI and API) no ComfyUI address.
"""

from __future__ import annotations

import html
import io
import re
import socket
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

API_KEY = "sk-matrix"
TRACEBACK_MARKS = ("Traceback (most recent call last)", 'File "', "\n  File ", "<class '",
                   "Exception:", "object at 0x")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(app: Any) -> tuple[str, Any, threading.Thread]:
    """Start `app` under uvicorn in a daemon thread; returns (url, server, thread)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        # gradio_client's heartbeat stream outlives Client.close(); do not wait for it
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                       timeout_graceful_shutdown=1)
    )
    thread = threading.Thread(target=server.run, name="matrix-studio", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/metrics", timeout=1.0)
            return url, server, thread
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("the studio did not start")


def comfy_addresses(comfy_url: str) -> tuple[str, ...]:
    """The ways ComfyUI's address could show up in a page or a message."""
    host_port = comfy_url.split("://", 1)[-1].rstrip("/")
    port = host_port.rsplit(":", 1)[-1]
    return (comfy_url, host_port, f"localhost:{port}")


def assert_actionable(text: str | None, *, hide: Iterable[str] = ()) -> None:
    """A sentence a person can act on: starts with a capital, says something, ends like a
    sentence, carries no traceback or Python repr, and names none of `hide`."""
    assert text, "no message at all"
    assert text.lstrip("'\"")[:1].isupper() or text[0] == "'", f"not a sentence: {text!r}"
    assert len(text.split()) >= 3, f"too short to act on: {text!r}"
    assert text.rstrip()[-1] in ".!?)", f"not a finished sentence: {text!r}"
    for mark in TRACEBACK_MARKS:
        assert mark not in text, f"{mark!r} in {text!r}"
    for secret in hide:
        assert secret not in text, f"ComfyUI's address {secret!r} leaked: {text!r}"


def plain(markup: Any) -> str:
    """The text a person reads in an HTML/Markdown component value."""
    if not isinstance(markup, str):
        return ""
    return html.unescape(re.sub(r"<[^>]+>", "", markup)).strip()


# --- the UI through gradio_client -------------------------------------------------------


@dataclass(frozen=True)
class UIResult:
    """What the tab shows after a run: its message, status, info line, result and gallery."""

    outputs: dict[str, Any]
    error: str | None = None            # an error modal instead of a normal answer
    result_url: str | None = None
    gallery_urls: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        return next((plain(v) for k, v in self.outputs.items() if k.endswith("_msg")), "")

    @property
    def status(self) -> str:
        return next((plain(v) for k, v in self.outputs.items() if k.endswith("_status")), "")

    @property
    def info(self) -> str:
        return next((str(v) for k, v in self.outputs.items()
                     if k.endswith("_info") and isinstance(v, str)), "")

    @property
    def shown(self) -> str:
        """Everything the person reads after the run (error modal or message)."""
        return self.error or self.message


def _urls(value: Any) -> list[str]:
    """Every file URL in an output value (FileData dicts, updates, gallery lists)."""
    found: list[str] = []
    if isinstance(value, dict):
        if isinstance(value.get("url"), str):
            found.append(value["url"])
        for key, item in value.items():
            if key != "url":
                found += _urls(item)
    elif isinstance(value, list | tuple):
        for item in value:
            found += _urls(item)
    return found


@dataclass
class UISession:
    """One browser-like session. `run(mode, image=..., prompt=...)` fills a tab's inputs by
    their elem_id (`<mode>_<name>`), keeps every other input at its default, and clicks run."""

    url: str
    client: Any = field(init=False)
    folder: Path = field(init=False)

    def __post_init__(self) -> None:
        from gradio_client import Client

        self.client = Client(self.url + "/", verbose=False, download_files=False,
                             analytics_enabled=False)
        self.folder = Path(tempfile.mkdtemp(prefix="matrix-ui-"))
        self._components = {c["id"]: c for c in self.client.config["components"]}

    @property
    def session_hash(self) -> str:
        return self.client.session_hash

    def close(self) -> None:
        self.client.close()

    # -- finding handlers -------------------------------------------------------------------

    def _elem(self, component_id: int) -> str:
        component = self._components.get(component_id, {})
        return component.get("props", {}).get("elem_id") or component.get("type", "?")

    def _dependency(self, *, trigger: str | None = None, first_output: str | None = None,
                    after: int | None = None) -> int:
        for index, dep in enumerate(self.client.config["dependencies"]):
            triggers = [self._elem(t[0]) for t in dep.get("targets", [])]
            outputs = [self._elem(o) for o in dep.get("outputs", [])]
            if trigger is not None and trigger not in triggers:
                continue
            if first_output is not None and outputs[:1] != [first_output]:
                continue
            if after is not None and dep.get("trigger_after") != after:
                continue
            if not dep.get("backend_fn", True):     # a browser-only step: what follows it
                return self._dependency(after=dep.get("id", index))
            fn_index = dep.get("id", index)
            self.client.endpoints[fn_index].is_valid = True   # see the module docstring
            return fn_index
        raise LookupError(f"no handler triggered by {trigger} (first output {first_output})")

    def inputs_of(self, mode: str) -> list[str]:
        dep = self.client.config["dependencies"][self._dependency(trigger=f"{mode}_run")]
        return [self._elem(i) for i in dep["inputs"]]

    def _call(self, fn_index: int, *args: Any, timeout: float = 60) -> dict[str, Any]:
        """One handler's outputs by element id (its last ones, for a stream)."""
        dep = self.client.config["dependencies"][fn_index]
        values = self.client.submit(*args, fn_index=fn_index).result(timeout=timeout)
        answered = self._answered(dep)
        if len(answered) == 1 or not isinstance(values, list | tuple):
            values = [values]
        return dict(zip(answered, values, strict=False))

    def _answered(self, dep: dict[str, Any]) -> list[str]:
        """The outputs gradio_client returns values for (not states, not buttons)."""
        from gradio_client.utils import SKIP_COMPONENTS

        return [self._elem(o) for o in dep["outputs"]
                if not self._components[o].get("skip_api",
                                               self._components[o]["type"] in SKIP_COMPONENTS)]

    # -- running ------------------------------------------------------------------------------

    def file(self, data: bytes, name: str) -> Any:
        from gradio_client import handle_file

        path = self.folder / f"{time.monotonic_ns()}-{name}"
        path.write_bytes(data)
        return handle_file(str(path))

    def _arg(self, component: dict[str, Any], value: Any, name: str) -> Any:
        if isinstance(value, Image.Image):
            buffer = io.BytesIO()
            value.save(buffer, format="PNG")
            value = (buffer.getvalue(), f"{name}.png")
        if isinstance(value, bytes):
            value = (value, f"{name}.png")
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], bytes):
            return self.file(*value)
        return value

    def submit(self, mode: str, **values: Any) -> tuple[Any, list[str]]:
        fn_index = self._dependency(trigger=f"{mode}_run")
        dep = self.client.config["dependencies"][fn_index]
        args = []
        unused = dict(values)
        for component_id in dep["inputs"]:
            component = self._components[component_id]
            if component.get("type") == "state":
                continue
            elem = self._elem(component_id)
            name = elem.removeprefix(f"{mode}_")
            if component.get("type") == "imageeditor":
                name = "editor"             # the editor's value reaches the run through a twin
            if name in unused:
                args.append(self._arg(component, unused.pop(name), name))
            else:
                args.append(component.get("props", {}).get("value"))
        assert not unused, f"{mode} has no inputs named {sorted(unused)}"
        return self.client.submit(*args, fn_index=fn_index), self._answered(dep)

    def collect(self, job: Any, outputs: list[str], timeout: float = 60) -> UIResult:
        """Run's answer, then what the page does next: follow the job until it ends, show
        what landed in the tab, refresh the history."""
        from gradio_client.exceptions import AppError

        try:
            values = job.result(timeout=timeout)
        except AppError as exc:
            return UIResult({}, error=str(exc))
        if not isinstance(values, list | tuple):
            values = [values]
        by_elem = dict(zip(outputs, values, strict=False))
        mode = next(k for k in by_elem if k.endswith("_msg")).removesuffix("_msg")
        submit = self._dependency(trigger=f"{mode}_run")
        try:
            followed = self._call(self._dependency(after=submit), None, timeout=timeout)
        except AppError as exc:
            return UIResult(by_elem, error=str(exc))
        by_elem[f"{mode}_status"] = followed.get(f"{mode}_status", by_elem.get(f"{mode}_status"))
        token = followed.get(f"{mode}_landed")
        if token:
            landed = self._call(self._dependency(trigger=f"{mode}_landed"), token, None)
            by_elem.update({k: v for k, v in landed.items() if v is not None or k.endswith(
                "_result")})
        if followed.get("history-token") not in (None, "0"):
            history = self._call(self._dependency(trigger="history-token"), None)
            by_elem["history-gallery"] = history.get("history-gallery")
        result = by_elem.get(f"{mode}_result")
        result_urls = _urls(result)
        gallery = tuple(_urls(by_elem.get("history-gallery")))
        return UIResult(by_elem, None, result_urls[0] if result_urls else None, gallery)

    def run(self, mode: str, *, timeout: float = 60, **values: Any) -> UIResult:
        job, outputs = self.submit(mode, **values)
        return self.collect(job, outputs, timeout)

    def sidebar(self) -> str:
        """The status panel as this session sees it (the timer's handler)."""
        fn_index = self._dependency(trigger="timer", first_output="side_status")
        return str(self._call(fn_index, None)["side_status"])

    def fetch(self, url: str) -> Image.Image:
        response = httpx.get(url, timeout=30)
        response.raise_for_status()
        image = Image.open(io.BytesIO(response.content))
        image.load()
        return image


# --- what ComfyUI received ----------------------------------------------------------------


def loaded_images(fake: Any) -> dict[str, Image.Image]:
    """The pictures the last finished prompt loaded in ComfyUI (LoadImage name → image), read
    from the fake's input folder: exactly what the studio uploaded."""
    entries = list(fake.history().values())
    assert entries, "ComfyUI has run nothing yet"
    graph = entries[-1]["prompt"][2]
    found: dict[str, Image.Image] = {}
    for _node_id, node in sorted(graph.items()):
        if node.get("class_type") == "LoadImage":
            name = str(node["inputs"]["image"])
            with Image.open(fake.input_dir / name) as image:
                image.load()
                found[name] = image.copy()
    return found

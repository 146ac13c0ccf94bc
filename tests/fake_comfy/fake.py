"""`FakeComfy`: the fake server on a free port, in a background thread with its own loop."""

from __future__ import annotations

import asyncio
import copy
import logging
import shutil
import tempfile
import threading
from collections.abc import Coroutine, Iterable
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from .control import add_control_routes
from .faults import Faults
from .server import Runtime
from .state import (
    CPU_RAM_TOTAL_BYTES,
    DEFAULT_VRAM_GB,
    GIB,
    PREVIEW_METHODS,
    Config,
    Counters,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


class FakeComfy:
    """A ComfyUI 0.3.64 stand-in. See the package docstring for the control API."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, root: str | Path | None = None,
                 step_delay: float = 0.0, load_delay: float = 0.0, node_delay: float = 0.0,
                 vram_total_gb: float | None = None, other_tenant_gb: float = 0.0,
                 cpu: bool = False, preview_method: str = "auto", gguf: bool = True) -> None:
        """`vram_total_gb`: the device's memory (default 48 GB; with `cpu`, the recorded
        machine's RAM); `other_tenant_gb`: held on it by another process; `cpu`: report a CPU
        device like `main.py --cpu`; `preview_method`: none | auto | latent2rgb (the real
        server's default is none); `gguf`: the ComfyUI-GGUF pack is installed."""
        _check_preview_method(preview_method)
        if vram_total_gb is None:
            vram_total_gb = CPU_RAM_TOTAL_BYTES / GIB if cpu else DEFAULT_VRAM_GB
        self._own_root = root is None
        base = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="fake-comfy-"))
        self.config = Config(root=base, host=host, port=port, step_delay=step_delay,
                             load_delay=load_delay, node_delay=node_delay,
                             vram_total_gb=float(vram_total_gb),
                             other_tenant_gb=float(other_tenant_gb), cpu=cpu,
                             preview_method=preview_method, gguf=gguf)
        self._counters = Counters()
        self.faults = Faults()
        self.runtime: Runtime | None = None
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> FakeComfy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> FakeComfy:
        """Listen (on a free port the first time, the same port afterwards)."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            ready = threading.Event()
            self._thread = threading.Thread(target=self._run_loop, args=(ready,),
                                            name="fake-comfy", daemon=True)
            self._thread.start()
            ready.wait()
        self._call(self._start_async())
        return self

    def stop(self) -> None:
        """Go down like a killed process: sockets cut, queue and history gone, port closed."""
        if self._loop is not None:
            self._call(self._stop_async())

    def restart(self) -> None:
        """Down and up again on the same port, with an empty queue, history and VRAM."""
        self._call(self._restart_async())

    def down(self, seconds: float | None = None) -> None:
        """Stop now; come back (like `restart`) after `seconds` when given."""
        self.stop()
        if seconds is not None:
            self._schedule(self._up_after(seconds))

    def close(self) -> None:
        """Stop for good, end the thread and remove the temporary folders."""
        if self._loop is not None:
            self._call(self._stop_async())
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._loop.close()
            self._loop = None
        if self._own_root:
            shutil.rmtree(self.config.root, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self.runtime is not None

    def _run_loop(self, ready: threading.Event) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(ready.set)
        self._loop.run_forever()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        assert self._loop is not None, "FakeComfy is not started"
        if threading.current_thread() is self._thread:
            raise RuntimeError("FakeComfy's blocking API cannot be used from its own loop")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _schedule(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run `coro` on the fake's loop without waiting (from any thread)."""
        assert self._loop is not None

        def create() -> None:
            task = asyncio.ensure_future(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        self._loop.call_soon_threadsafe(create)

    async def _start_async(self) -> None:
        if self.runtime is not None:
            return
        runtime = Runtime(self.config, self._counters, self.faults)
        await runtime.start()
        runner = web.AppRunner(runtime.build_app(lambda app: add_control_routes(app, self)),
                               access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port, reuse_address=True)
        await site.start()
        if self.config.port == 0:
            server = site._server   # aiohttp keeps the asyncio server here
            assert isinstance(server, asyncio.Server)
            self.config.port = server.sockets[0].getsockname()[1]
        self.runtime, self._runner = runtime, runner
        log.info("fake ComfyUI listening on %s", self.url)

    async def _stop_async(self) -> None:
        runtime, runner = self.runtime, self._runner
        self.runtime, self._runner = None, None
        if runtime is not None:
            runtime.hub.drop_all()
        if runner is not None:
            await runner.cleanup()
        if runtime is not None:
            await runtime.stop()

    async def _restart_async(self) -> None:
        await asyncio.sleep(0.05)     # let a /__fake__/restart answer go out first
        await self._stop_async()
        await self._start_async()

    async def _down_async(self, seconds: float) -> None:
        await asyncio.sleep(0.05)
        await self._stop_async()
        await self._up_after(seconds)

    async def _up_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self._start_async()

    # --- where it is ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.config.port}"

    def ws_url(self, client_id: str | None = None) -> str:
        base = f"ws://{self.config.host}:{self.config.port}/ws"
        return f"{base}?clientId={client_id}" if client_id else base

    @property
    def input_dir(self) -> Path:
        return self.config.input_dir

    @property
    def output_dir(self) -> Path:
        return self.config.output_dir

    @property
    def temp_dir(self) -> Path:
        return self.config.temp_dir

    def put_input(self, name: str, data: bytes, subfolder: str = "") -> str:
        """Place a file in input/ directly (as if uploaded); returns its LoadImage name."""
        folder = self.config.input_dir / subfolder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        return f"{subfolder}/{name}" if subfolder else name

    # --- settings ------------------------------------------------------------------------

    def set_models(self, folder: str, files: Iterable[str]) -> None:
        """What `/models/{folder}` and the loader combos list (e.g. [] = a missing model)."""
        self.config.models = {**self.config.models, folder: list(files)}

    def models(self, folder: str) -> list[str]:
        return list(self.config.models.get(folder, []))

    def hide_classes(self, *class_types: str) -> None:
        """Remove node classes from /object_info (a custom pack that is not installed)."""
        self.config.hidden_classes = self.config.hidden_classes | set(class_types)

    def show_classes(self, *class_types: str) -> None:
        self.config.hidden_classes = (self.config.hidden_classes - set(class_types)
                                      if class_types else set())

    def set_delays(self, *, step: float | None = None, load: float | None = None,
                   node: float | None = None) -> None:
        """Seconds per sampler step, per model load, and added to every executed node."""
        if step is not None:
            self.config.step_delay = float(step)
        if load is not None:
            self.config.load_delay = float(load)
        if node is not None:
            self.config.node_delay = float(node)

    def set_vram_total(self, gb: float) -> None:
        self.config.vram_total_gb = float(gb)

    def set_other_tenant(self, gb: float) -> None:
        """GB another process holds on the device (less free VRAM, less room for models)."""
        self.config.other_tenant_gb = float(gb)

    def set_preview_method(self, method: str) -> None:
        """none | auto | latent2rgb, as `--preview-method` (applies from the next node)."""
        _check_preview_method(method)
        self.config.preview_method = method

    def set_gguf(self, installed: bool) -> None:
        """Install or remove the ComfyUI-GGUF pack (its classes and model-list routes)."""
        self.config.gguf = bool(installed)

    def set_empty_files(self, *names: str) -> None:
        """Model files that are listed but empty: loading one fails as recorded (safetensors'
        header error, or gguf's "cannot mmap an empty file"). No names: none are empty."""
        self.config.empty_files = set(names)

    # --- faults --------------------------------------------------------------------------

    def oom_at(self, target: str, times: int | None = None) -> None:
        """CUDA out-of-memory when node id / class / model file `target` runs or loads."""
        self.faults.oom_at(target, times)

    def fail_at(self, target: str, exception_type: str = "RuntimeError",
                message: str = "Simulated failure", times: int | None = None) -> None:
        self.faults.error_at(target, exception_type, message, times)

    def fail_http(self, *routes: str, times: int | None = None) -> None:
        """500 with an empty body on these routes ("/prompt", "GET /queue"), or all."""
        self.faults.fail_http(list(routes) or None, times)

    def stall_websockets(self, stalled: bool = True) -> None:
        """Sockets stay open but nothing more is sent (pings unanswered too)."""
        self.faults.ws_stalled = stalled

    def drop_websockets(self) -> int:
        """Cut every websocket now (no close frame). Returns how many were cut."""
        async def drop() -> int:
            return self.runtime.hub.drop_all() if self.runtime else 0
        dropped = self._call(drop())
        self._counters.add("ws_drops", dropped)
        return dropped

    def clear_faults(self) -> None:
        self.faults.clear()

    # --- reading back --------------------------------------------------------------------

    @property
    def counters(self) -> dict[str, Any]:
        """interrupts, interrupts_applied, prompts_posted/rejected/executed, model_loads,
        model_swaps, model_unloads, frees, ws_connections, ws_drops, requests{"GET /queue"},
        loads_by_model{file}."""
        return self._counters.snapshot()

    def reset_counters(self) -> None:
        self._counters.reset()

    def _read(self, fn: Any) -> Any:
        async def read() -> Any:
            return copy.deepcopy(fn(self.runtime)) if self.runtime is not None else None
        return self._call(read())

    @property
    def resident_models(self) -> list[str]:
        return self._read(lambda rt: [name for _, name in rt.memory.resident]) or []

    @property
    def vram_free(self) -> int:
        return int(self._read(lambda rt: rt.memory.device()["vram_free"]) or 0)

    def history(self, prompt_id: str | None = None) -> dict[str, Any]:
        if prompt_id is None:
            return self._read(lambda rt: rt.history.items) or {}
        return self._read(lambda rt: rt.history.one(prompt_id)) or {}

    def queue_ids(self) -> tuple[list[str], list[str]]:
        def ids(rt: Runtime) -> tuple[list[str], list[str]]:
            q = rt.executor.queue
            return ([q.running.prompt_id] if q.running else [], [i.prompt_id for i in q.pending])
        return self._read(ids) or ([], [])

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until nothing runs or waits and /free was handled (True), or `timeout`
        passes (False)."""
        async def wait() -> bool:
            if self.runtime is None:
                return True
            executor = self.runtime.executor
            try:
                async with asyncio.timeout(timeout):
                    while executor.queue.remaining() or executor.queue.flags:
                        await executor.idle.wait()
                        await asyncio.sleep(0)
            except TimeoutError:
                return False
            return True
        return self._call(wait(), timeout + 5)

    def state(self) -> dict[str, Any]:
        """Everything `/__fake__/state` reports."""
        runtime = self.runtime
        memory = runtime.memory if runtime else None
        queue = runtime.executor.queue if runtime else None
        return {
            "url": self.url,
            "running": runtime is not None,
            "counters": self.counters,
            "faults": self.faults.snapshot(),
            "models": self.config.models,
            "hidden_classes": sorted(self.config.hidden_classes),
            "packs": {"gguf": self.config.gguf},
            "empty_files": sorted(self.config.empty_files),
            "preview_method": self.config.preview_method,
            "delays": {"step_delay": self.config.step_delay, "load_delay": self.config.load_delay,
                       "node_delay": self.config.node_delay},
            "memory": {
                "device": "cpu" if self.config.cpu else "cuda",
                "vram_total": int(self.config.vram_total_gb * GIB),
                "other_tenant": int(self.config.other_tenant_gb * GIB),
                "vram_free": memory.device()["vram_free"] if memory else None,
                "resident": [{"folder": f, "name": n, "vram_gb": gb}
                             for (f, n), gb in memory.resident.items()] if memory else [],
            },
            "queue": {
                "running": [queue.running.prompt_id] if queue and queue.running else [],
                "pending": [i.prompt_id for i in queue.pending] if queue else [],
            },
            "dirs": {"input": str(self.input_dir), "output": str(self.output_dir),
                     "temp": str(self.temp_dir)},
        }


def _check_preview_method(method: str) -> None:
    if method not in PREVIEW_METHODS:
        raise ValueError(f"preview method {method!r} is not one of {', '.join(PREVIEW_METHODS)}")

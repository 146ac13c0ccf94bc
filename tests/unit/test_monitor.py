"""Monitor: one poller for every viewer, offline → online, free VRAM, fit estimates.

A stub client stands in for ComfyUI here (the integration and API tiers use the fake server):
it counts calls, can go offline, and frees memory on POST /free.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from backend import monitor as monitor_mod
from backend.comfy.types import Device, QueueItem, QueueSnapshot, SystemStats
from backend.jobs import LoadedModels
from backend.modes import REGISTRY
from backend.monitor import GB, LastRun, Monitor, estimate_fit
from backend.scheduler import Scheduler, SchedulerConfig
from backend.settings import Settings
from backend.workflows import TemplateLibrary
from tests.fake_comfy.objectinfo import build_object_info

SECRET_URL = "http://10.9.8.7:8188"
MODES = REGISTRY.names()


class StubStudio:
    """What the monitor reads of the studio: what it believes is loaded and its own queue."""

    def __init__(self, last_mode: str | None = None, loaded_file: str | None = None) -> None:
        family = REGISTRY.get(last_mode).family.name if last_mode else ""
        self.loaded = LoadedModels(last_mode, family, loaded_file) if last_mode else None
        self.loaded_file = loaded_file
        self.scheduler = Scheduler(SchedulerConfig(policy="fifo"))
        self.server_changed = False       # what notice_server_changes() will find

    @property
    def last_mode(self) -> str | None:
        return self.loaded.mode if self.loaded else None

    def forget_loaded(self) -> None:
        self.loaded = None
        self.loaded_file = None

    def notice_server_changes(self) -> bool:
        if self.server_changed and self.loaded is not None:
            self.forget_loaded()
            return True
        return False


class StubClient:
    def __init__(self, library: TemplateLibrary, settings: Settings) -> None:
        self.online = True
        self.connected = True
        self.vram_total = 48 * GB
        self.vram_free = 10 * GB
        self.calls: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        m = settings.models
        self.listings = {
            "diffusion_models": [m.generate_unet, m.edit_unet],
            "text_encoders": [m.text_encoder],
            "vae": [m.vae],
        }
        # The recorded real schemas, loader lists filled: every mode is ready (its template
        # validates too) unless a test removes something.
        self.object_info_body = build_object_info(self.listings, [])

    def open_socket(self) -> None:
        self.connected = True

    async def _call(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)
            if not self.online:
                import httpx

                raise httpx.ConnectError(f"All connection attempts failed ({SECRET_URL})")
        finally:
            self.in_flight -= 1

    async def system_stats(self) -> SystemStats:
        await self._call("system_stats")
        return SystemStats(
            "0.3.64", 64 * GB, 32 * GB, [Device("cuda:0 RTX", "cuda", self.vram_total, self.vram_free)]
        )

    async def queue(self) -> QueueSnapshot:
        await self._call("queue")
        return QueueSnapshot(running=[QueueItem(1, "p-run")], pending=[QueueItem(2, "p-wait")])

    async def object_info(self) -> dict:
        await self._call("object_info")
        return self.object_info_body

    async def models(self, folder: str) -> list[str]:
        await self._call("models")
        return self.listings.get(folder, [])

    async def free(self, unload_models: bool = True, free_memory: bool = True) -> None:
        await self._call("free")
        self.vram_free = 38 * GB + GB // 10


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env({}, comfy_url=SECRET_URL, poll_interval_s=3600.0)


@pytest.fixture
def library(settings: Settings) -> TemplateLibrary:
    return TemplateLibrary(settings.workflows_dir)


@pytest.fixture
async def monitor_and_client(settings, library):
    client = StubClient(library, settings)
    monitor = Monitor(client, settings, library, studio=None)
    yield monitor, client
    await monitor.aclose()


async def wait_for(predicate) -> None:
    async with asyncio.timeout(5.0):
        for _ in iter(predicate, True):   # poll the condition; the poller runs in between
            await asyncio.sleep(0.01)


async def test_many_viewers_share_one_poll(monitor_and_client):
    monitor, client = monitor_and_client
    first = monitor.snapshot()
    assert first.online is False and first.checked_at is None   # never blocks, never raises

    async def viewer() -> None:
        for _ in range(20):
            monitor.snapshot()
            await asyncio.sleep(0)

    await asyncio.gather(*(viewer() for _ in range(25)))
    await wait_for(lambda: monitor.snapshot().checked_at is not None)
    # 500 snapshots from 25 viewers inside one poll interval: exactly one poll reached ComfyUI.
    assert client.calls["system_stats"] == 1
    assert client.calls["queue"] == 1
    assert client.max_in_flight <= 2     # system_stats and queue together, never more
    snap = monitor.snapshot()
    assert snap.online and snap.error is None
    assert snap.comfyui_version == "0.3.64"
    assert snap.queue_running == ("p-run",) and snap.queue_pending == ("p-wait",)
    assert snap.vram_total == 48 * GB and snap.device_name == "cuda:0 RTX"
    assert all(snap.modes[m].ready is True for m in MODES)


async def test_poller_stops_when_nobody_watches(settings, library, monkeypatch):
    monkeypatch.setattr(monitor_mod, "WATCH_WINDOW_S", 0.05)
    client = StubClient(library, settings)
    monitor = Monitor(client, dataclasses.replace(settings, poll_interval_s=0.01), library)
    try:
        await monitor.refresh_now()        # readiness checked: the polls below are quick ones
        monitor.snapshot()
        await wait_for(lambda: monitor.polls >= 3)
        await asyncio.sleep(0.1)            # past the watch window: the loop goes to sleep
        idle_polls = monitor.polls
        await asyncio.sleep(0.1)
        assert monitor.polls == idle_polls  # no viewer, no traffic to ComfyUI
        monitor.snapshot()                  # a viewer comes back: polling resumes
        await wait_for(lambda: monitor.polls > idle_polls)
    finally:
        await monitor.aclose()


async def test_offline_then_online_again(monitor_and_client):
    monitor, client = monitor_and_client
    client.online = False
    snap = await monitor.refresh_now()
    assert snap.online is False
    assert snap.error and "not reachable" in snap.error
    assert "10.9.8.7" not in snap.error and "8188" not in snap.error   # the browser sees this
    assert snap.queue_running == ()
    assert all(status.ready is None for status in snap.modes.values())

    client.online = True
    snap = await monitor.refresh_now()
    assert snap.online is True and snap.error is None
    assert client.calls["object_info"] == 1          # readiness checked as soon as it is back
    await monitor.refresh_now()
    assert client.calls["object_info"] == 1          # …and not on every poll


async def test_readiness_names_what_is_missing(monitor_and_client):
    monitor, client = monitor_and_client
    del client.object_info_body["LanPaint_KSampler"]
    client.listings["diffusion_models"] = [client.listings["diffusion_models"][0]]  # no edit model
    snap = await monitor.refresh_now()
    assert snap.modes["generate"].ready is True and snap.modes["generate"].missing == ""
    assert snap.modes["remove_background"].ready is True
    inpaint = snap.modes["inpaint"]
    assert inpaint.ready is False
    assert "LanPaint_KSampler" in inpaint.missing
    assert "qwen_image_edit_2511_fp8mixed.safetensors" in inpaint.missing
    assert snap.modes["edit"].ready is False and "LanPaint" not in snap.modes["edit"].missing


async def test_free_vram_reports_what_was_freed(settings, library):
    client = StubClient(library, settings)
    studio = StubStudio("edit", "qwen_image_edit_2511_fp8mixed.safetensors")
    monitor = Monitor(client, settings, library, studio=studio)  # type: ignore[arg-type]
    try:
        snap = await monitor.refresh_now()
        assert snap.loaded_file == studio.loaded_file and snap.loaded_family == "edit model"
        message = await monitor.free_vram()
        assert client.calls["free"] == 1
        assert message.startswith("Freed 28.1 GB")
        snap = monitor.snapshot()
        assert snap.vram_free == client.vram_free
        # Nothing is loaded any more: the next job pays the load again.
        assert snap.loaded_file is None and studio.loaded_file is None
        assert snap.last_mode is None and snap.loaded_family is None
    finally:
        await monitor.aclose()


async def test_free_vram_offline_is_a_sentence(monitor_and_client):
    monitor, client = monitor_and_client
    client.online = False
    message = await monitor.free_vram()
    assert message.startswith("Could not free VRAM")
    assert "10.9.8.7" not in message


async def test_fit_counts_what_the_last_mode_holds(settings, library):
    client = StubClient(library, settings)
    client.vram_free = 3 * GB
    monitor = Monitor(client, settings, library, studio=StubStudio("generate"))  # type: ignore[arg-type]
    try:
        snap = await monitor.refresh_now()
    finally:
        await monitor.aclose()
    assert snap.last_mode == "generate"
    assert snap.modes["generate"].fits is True          # its model is already resident
    assert "already loaded" in snap.modes["generate"].note
    assert snap.modes["edit"].fits is True              # ComfyUI unloads the generator
    assert "unloading" in snap.modes["edit"].note
    assert snap.modes["region_edit"].fits is True       # 3 + 30 >= 33
    assert snap.swap_cost_s == (5.0, 10.0)


def test_estimate_fit_on_a_crowded_gpu():
    fits, note = estimate_fit("generation model", 30.0, 3 * GB, None)
    assert fits is False and "lower the resolution" in note
    assert estimate_fit("background-removal model", 3.0, 3 * GB, None)[0] is True
    assert estimate_fit("edit model", 30.0, None, None)[0] is None


def test_snapshot_without_a_loop_does_not_raise(settings, library):
    monitor = Monitor(StubClient(library, settings), settings, library)
    snap = monitor.snapshot()
    assert snap.online is False and snap.error
    assert set(snap.modes) == set(MODES)


async def test_readiness_checks_the_files_settings_name(settings, library):
    custom = dataclasses.replace(
        settings, models=dataclasses.replace(settings.models, generate_unet="my_qwen.gguf")
    )
    client = StubClient(library, settings)     # the server has the default files only
    monitor = Monitor(client, custom, library)
    try:
        snap = await monitor.refresh_now()
    finally:
        await monitor.aclose()
    assert snap.modes["generate"].ready is False
    assert "my_qwen.gguf" in snap.modes["generate"].missing
    assert snap.modes["edit"].ready is True


async def test_snapshot_from_a_worker_thread_wakes_the_poller(monitor_and_client):
    """Gradio runs sync handlers in threads: their snapshot() must still drive the poller."""
    monitor, client = monitor_and_client
    monitor.start()                          # done by the API router's lifespan at startup
    await asyncio.sleep(0.05)
    assert client.calls.get("system_stats", 0) == 0    # nobody watching yet: no traffic
    await asyncio.to_thread(monitor.snapshot)
    await wait_for(lambda: client.calls.get("system_stats", 0) == 1)


def test_estimate_fit_counts_what_comfyui_holds_not_only_the_last_mode():
    """Edit models stay resident after a background removal: the reserved memory ComfyUI
    reports (torch_vram_total) is reclaimable, so edit and generate still fit."""
    rmbg = LastRun("background-removal model", 3.0)
    free, held = int(14.4 * GB), int(33.6 * GB)
    assert estimate_fit("generation model", 30.0, free, rmbg)[0] is False
    fits, note = estimate_fit("generation model", 30.0, free, rmbg, held_bytes=held)
    assert fits is True and "34 GB ComfyUI frees" in note
    # Another service holding the GPU is not ComfyUI's to give back.
    edit = LastRun("edit model", 30.0)
    assert estimate_fit("generation model", 30.0, 2 * GB, edit, held_bytes=0)[0] is False


async def test_snapshot_counts_jobs_waiting_in_the_studio_queue(settings, library):
    studio = StubStudio()
    monitor = Monitor(StubClient(library, settings), settings, library, studio=studio)  # type: ignore[arg-type]
    try:
        turns = [studio.scheduler.enter("edit") for _ in range(3)]   # one in flight, two wait
        for turn in turns:
            async for _ in turn.wait():
                break
        assert monitor.snapshot().studio_waiting == 2
        for turn in turns:
            turn.leave()
        assert monitor.snapshot().studio_waiting == 0
    finally:
        await monitor.aclose()


async def test_fit_does_not_count_comfyuis_unused_reserve_twice(settings, library):
    """ComfyUI's vram_free already includes torch_vram_free (reserved but unused), so only
    torch_vram_total - torch_vram_free is memory that unloading would add."""
    device = Device("cuda:0 RTX", "cuda", 24 * GB, 20 * GB, torch_vram_total=6 * GB,
                    torch_vram_free=4 * GB)
    client = StubClient(library, settings)
    client.system_stats = _returning(SystemStats("0.3.64", 64 * GB, 32 * GB, [device]))  # type: ignore[method-assign]
    monitor = Monitor(client, settings, library, studio=StubStudio("edit"))  # type: ignore[arg-type]
    try:
        snap = await monitor.refresh_now()
    finally:
        await monitor.aclose()
    assert snap.memory == "VRAM" and snap.comfy_vram_held == 2 * GB
    assert snap.modes["generate"].fits is False       # 20 + 2 < 30 (not 20 + 6)
    assert "20.0 GB VRAM free + ~2 GB ComfyUI frees" in snap.modes["generate"].note


async def test_a_cpu_device_is_ram_and_holds_nothing_when_nothing_is_loaded(
    settings, library, fixtures_dir
):
    """Recorded `--cpu` server (issue 10 item 13): torch's figures are the whole machine's
    RAM there, so total - free (1.8 GB of OS and ComfyUI itself) is not what unloading frees;
    it said "~4 GB ComfyUI frees by unloading" and "free VRAM on the GPU"."""
    import json

    recorded = json.loads((fixtures_dir / "trace_misc.json").read_text())
    stats = SystemStats.from_body(recorded["GET /system_stats"]["body"])
    assert stats.devices[0].type == "cpu"
    client = StubClient(library, settings)
    client.system_stats = _returning(stats)          # type: ignore[method-assign]
    studio = StubStudio()
    monitor = Monitor(client, settings, library, studio=studio)  # type: ignore[arg-type]
    try:
        snap = await monitor.refresh_now()
        assert snap.memory == "RAM" and snap.comfy_vram_held is None
        generate = snap.modes["generate"]
        assert generate.note.startswith("needs ~30 GB; 21.8 GB RAM free")
        assert "ComfyUI frees" not in generate.note and "VRAM" not in generate.note
        assert "GPU" not in generate.note and "free RAM on this machine" in generate.note
        # With a model loaded, its peak stands in for what ComfyUI would give back.
        studio.loaded = LoadedModels("remove_background", "background-removal model", "BiRefNet")
        note = (await monitor.refresh_now()).modes["generate"].note
        assert "21.8 GB RAM free + ~3 GB ComfyUI frees" in note
        message = await monitor.free_vram()
        assert "VRAM" not in message and "RAM" in message
    finally:
        await monitor.aclose()


def _returning(value):
    async def call() -> object:
        return value

    return call


async def test_readiness_validates_the_bound_template(settings, library):
    """A mode whose classes and folder files are all there can still be refused by ComfyUI:
    here the background remover is told to use a model its node does not offer."""
    odd = dataclasses.replace(
        settings, models=dataclasses.replace(settings.models, birefnet="RMBG-nope")
    )
    monitor = Monitor(StubClient(library, settings), odd, library)
    try:
        snap = await monitor.refresh_now()
    finally:
        await monitor.aclose()
    status = snap.modes["remove_background"]
    assert status.ready is False
    assert status.missing.startswith("not ready: ComfyUI would reject remove_background.json")
    assert "RMBG-nope" in status.missing and "'model'" in status.missing
    assert snap.modes["edit"].ready is True


async def test_a_last_mode_no_longer_registered_does_not_stop_the_poller(settings, library):
    registry = REGISTRY.copy()
    studio = StubStudio("generate", settings.models.generate_unet)
    monitor = Monitor(StubClient(library, settings), settings, library, registry,
                      studio)  # type: ignore[arg-type]
    try:
        await monitor.refresh_now()
        registry.unregister("generate")      # e.g. a workflow app removed after it ran
        snap = await monitor.refresh_now()
    finally:
        await monitor.aclose()
    assert snap.online and "generate" not in snap.modes
    # What ComfyUI holds does not change when a mode goes: the family was recorded at load.
    assert snap.last_mode == "generate" and snap.loaded_family == "generation model"
    assert all(status.fits is not None for status in snap.modes.values())


async def test_a_mode_that_cannot_prepare_is_not_ready_and_the_others_still_are(
    settings, library
):
    def broken(inputs):
        raise RuntimeError("bug in a mode")

    registry = REGISTRY.copy()
    edit = registry.get("edit")
    registry.unregister("edit")
    registry.register(dataclasses.replace(edit, warmup=broken))
    monitor = Monitor(StubClient(library, settings), settings, library, registry)
    try:
        snap = await monitor.refresh_now()
    finally:
        await monitor.aclose()
    assert snap.modes["edit"].ready is False and "RuntimeError" in snap.modes["edit"].missing
    assert snap.modes["generate"].ready is True


# --- several servers (issue 15) --------------------------------------------------------------


class ServerStub(StubClient):
    """A stub server with what the monitor needs of several: our session's mark on prompts,
    a socket listener, and jobs' counters (a Studio is made over it)."""

    session_id = "ours"
    epoch = 0
    server_generation = 0
    abandoned_prompt_ids: frozenset[str] = frozenset()

    def __init__(self, library: TemplateLibrary, settings: Settings) -> None:
        super().__init__(library, settings)
        self.listeners: list = []

    def add_listener(self, listener):
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    async def queue(self) -> QueueSnapshot:
        await self._call("queue")
        return QueueSnapshot(
            running=[QueueItem(1, "p-run", studio_session="ours")],
            pending=[QueueItem(2, "p-other"), QueueItem(3, "p-other-2")],
        )


@pytest.fixture
async def two_servers(library):
    from backend.jobs import Studio

    settings = Settings.from_env({}, comfy_url="a=http://10.9.8.7:8188,b=http://10.9.8.6:8188",
                                 poll_interval_s=3600.0)
    clients = {"a": ServerStub(library, settings), "b": ServerStub(library, settings)}
    studio = Studio(clients, settings, library)
    monitor = Monitor(clients, settings, library, studio=studio)
    yield monitor, clients, studio
    await monitor.aclose()


async def test_several_servers_have_a_snapshot_each_and_an_aggregate(two_servers):
    monitor, clients, studio = two_servers
    clients["b"].vram_free = 30 * GB
    clients["b"].listings["diffusion_models"] = []       # b lacks every UNet
    snap = await monitor.refresh_now()
    each = monitor.server_snapshots()
    assert list(each) == ["a", "b"] and [s.server for s in each.values()] == ["a", "b"]
    assert each["a"].vram_free == 10 * GB and each["b"].vram_free == 30 * GB
    assert each["b"].modes["generate"].ready is False
    # The aggregate: online, the roomiest server's device, every queue, ready if anywhere.
    assert snap.online and snap.server == "" and snap.vram_free == 30 * GB
    assert len(snap.queue_pending) == 4 and len(snap.queue_running) == 2
    assert snap.modes["generate"].ready is True
    # Routing is fed: other clients' prompts per server, readiness and free memory.
    assert studio.scheduler._servers["a"].external == 2       # ours is not "other"
    assert studio.backends["b"].ready["generate"] is False
    assert studio.backends["b"].vram_free == 30 * GB
    assert studio.servers_for(REGISTRY.get("generate")) == frozenset({"a"})

    clients["a"].online = False
    snap = await monitor.refresh_now()
    assert snap.online                                   # b still answers
    assert not studio.scheduler.available("a") and studio.scheduler.available("b")
    assert monitor.server_snapshots()["a"].modes["generate"].ready is None  # unknown now
    assert "10.9.8.7" not in (monitor.server_snapshots()["a"].error or "x")
    clients["b"].online = False
    snap = await monitor.refresh_now()
    assert not snap.online and "not reachable" in (snap.error or "")


async def test_several_servers_learn_of_a_socket_at_once_and_are_always_polled(two_servers):
    monitor, clients, studio = two_servers
    from backend.comfy import ConnectionChanged

    monitor.start()
    assert all(len(c.listeners) == 1 for c in clients.values())
    clients["a"].listeners[0](ConnectionChanged(False))
    assert not studio.scheduler.available("a")
    clients["a"].listeners[0](ConnectionChanged(True))
    assert studio.scheduler.available("a")
    # No viewer, yet the poller runs (routing reads it): a reconnect polls at once.
    polls = monitor.polls
    clients["b"].listeners[0](ConnectionChanged(True))
    await wait_for(lambda: monitor.polls > polls)


async def test_free_acts_on_one_server_or_all(two_servers):
    monitor, clients, _ = two_servers
    await monitor.refresh_now()
    one = await monitor.free_vram("b")
    assert one.startswith("b: Freed") and clients["a"].calls.get("free") is None
    both = await monitor.free_vram()
    assert "a: Freed" in both and "b: Nothing to free" in both
    assert (await monitor.free_vram("c")).startswith("Could not free memory: there is no")


async def test_a_server_that_answers_again_gets_its_abandoned_prompts_cancelled(two_servers):
    """A job moved away from a server that only timed out (its socket never dropped): the
    next poll that reaches it cancels what was left there."""
    monitor, clients, _ = two_servers
    cancelled: list[str] = []

    async def cancel_abandoned() -> int:
        cancelled.extend(clients["a"].abandoned_prompt_ids)
        clients["a"].abandoned_prompt_ids = frozenset()
        return len(cancelled)

    clients["a"].abandoned_prompt_ids = frozenset({"left-behind"})
    clients["a"].cancel_abandoned = cancel_abandoned
    await monitor.refresh_now()
    assert cancelled == ["left-behind"]

"""Several ComfyUI servers: COMFYUI_URL and --comfy-url, labels, scrubbing every address,
where a mode may run, and the per-server metrics (issue 15)."""

from __future__ import annotations

import pytest

import app as app_module
from backend.events import Failed, Finished, JobInfo, ModelsLoaded, Moved
from backend.jobs import NotReadyAnywhere, Studio
from backend.metrics import StudioMetrics
from backend.modes import REGISTRY
from backend.redaction import offline_message, scrub
from backend.settings import ComfyServer, Settings, parse_servers
from backend.workflows import TemplateLibrary


def test_one_url_is_one_server_as_before() -> None:
    settings = Settings.from_env({"COMFYUI_URL": "http://gpu-box:8188/"})
    assert settings.comfy_url == "http://gpu-box:8188"
    assert settings.servers == (ComfyServer("gpu-box", "http://gpu-box:8188"),)
    assert Settings().servers == (ComfyServer("1", "http://127.0.0.1:8188"),)


def test_several_servers_are_named_after_their_hosts_or_their_place() -> None:
    assert parse_servers("http://gpu-a:8188, http://gpu-b.lan:8188/") == (
        ComfyServer("gpu-a", "http://gpu-a:8188"), ComfyServer("gpu-b", "http://gpu-b.lan:8188"),
    )
    # Addresses, localhost and a host two servers share are numbered by their place.
    assert [s.label for s in parse_servers(
        "http://10.0.0.5:8188,http://localhost:8189,http://box:1,http://box:2"
    )] == ["1", "2", "3", "4"]
    # A scheme is added when missing.
    assert parse_servers("gpu-a:8188")[0].url == "http://gpu-a:8188"


def test_labels_are_kept_and_must_be_unique() -> None:
    assert parse_servers("a=http://gpu-a:8188,b=http://gpu-b:8188") == (
        ComfyServer("a", "http://gpu-a:8188"), ComfyServer("b", "http://gpu-b:8188"),
    )
    # An explicit label wins over a guessed one that would collide with it.
    assert [s.label for s in parse_servers("2=http://x:1,http://10.0.0.1:2")] == ["2", "server2"]
    with pytest.raises(ValueError, match="twice"):
        parse_servers("a=http://x:1,a=http://y:2")
    with pytest.raises(ValueError, match="names no server"):
        Settings.from_env({"COMFYUI_URL": " , "})
    with pytest.raises(ValueError, match="not a server address"):
        parse_servers("a=http://")


def test_comfy_url_flag_repeats() -> None:
    args = app_module.parse_args(["--comfy-url", "a=http://gpu-a:8188/",
                                  "--comfy-url", "http://gpu-b:8188"])
    settings = app_module.settings_from_args(args)
    assert [(s.label, s.url) for s in settings.servers] == [
        ("a", "http://gpu-a:8188"), ("gpu-b", "http://gpu-b:8188")]
    assert app_module.main(["--comfy-url", "a=http://x:1", "--comfy-url", "a=http://y:2",
                            "free"]) == 2     # a duplicate label: a sentence, no traceback


def test_scrub_hides_every_server_address_but_keeps_labels() -> None:
    servers = "a=http://10.1.2.3:8188,http://gpu-b.lan:8189,http://gpu-c:8190"
    text = ("http://10.1.2.3:8188/prompt failed; 10.1.2.3:8188 refused; gpu-b.lan:8189 and "
            "gpu-b.lan down; http://gpu-c:8190 gone; moved from a to gpu-c")
    clean = scrub(text, servers)
    for secret in ("10.1.2.3", "8188", "gpu-b.lan", "8189", "8190", "http://"):
        assert secret not in clean
    assert clean.endswith("moved from a to gpu-c")        # labels are meant to be seen
    assert "10.1.2.3" not in offline_message(ConnectionError("http://10.1.2.3:8188"), servers)
    assert scrub("at http://h:1", "http://h:1") == "at ComfyUI"     # one server: as before


class _Client:
    epoch = 0
    server_generation = 0


def studio_of(labels: str) -> Studio:
    settings = Settings(comfy_url=labels)
    clients = {s.label: _Client() for s in settings.servers}
    return Studio(clients, settings, TemplateLibrary(settings.workflows_dir))  # type: ignore[arg-type]


def test_a_mode_goes_where_it_is_not_known_unready() -> None:
    studio = studio_of("a=http://x:1,b=http://y:2")
    inpaint = REGISTRY.get("inpaint")
    assert studio.servers_for(inpaint) is None                        # unknown: anywhere
    studio.set_server_status("b", ready={"inpaint": (False, "not ready: no LanPaint")},
                             vram_free=None)
    assert studio.servers_for(inpaint) == frozenset({"a"})
    studio.set_server_status("a", ready={"inpaint": (None, "")}, vram_free=None)
    assert studio.servers_for(inpaint) == frozenset({"a"})           # a: unknown, may go
    studio.set_server_status("a", ready={"inpaint": (False, "not ready: no LanPaint")},
                             vram_free=None)
    with pytest.raises(NotReadyAnywhere, match=r"Inpaint is not ready on any ComfyUI server"):
        studio.servers_for(inpaint)
    assert studio.servers_for(inpaint, "b") == frozenset({"b"})       # asked for by name
    with pytest.raises(ValueError, match="no ComfyUI server called 'c'"):
        studio.servers_for(inpaint, "c")


def test_one_server_never_refuses_early() -> None:
    """With one server the job goes and ComfyUI's own refusal names what is missing."""
    studio = studio_of("http://x:1")
    [label] = studio.backends
    studio.set_server_status(label, ready={"inpaint": (False, "not ready")}, vram_free=None)
    assert studio.servers_for(REGISTRY.get("inpaint")) is None


def test_metrics_count_per_backend_and_failovers() -> None:
    metrics = StudioMetrics()
    job = JobInfo("generate", "api", 0.0)
    metrics.job_started(job)
    metrics.job_event(job, ModelsLoaded("generation model", "unet", True, "a"))
    metrics.job_event(job, Moved("a", "b", "unreachable", "Moved from a to b."))
    metrics.job_event(job, Finished([], 1, {}, {}, "generate", server="b"))
    metrics.job_ended(job, "finished")
    other = JobInfo("edit", "ui", 0.0)
    metrics.job_event(other, Failed("boom", kind="execution", server="a"))
    sample = metrics.registry.get_sample_value
    assert sample("studio_failovers_total", {"from_backend": "a", "to_backend": "b",
                                             "reason": "unreachable"}) == 1
    assert sample("studio_backend_jobs_total",
                  {"backend": "b", "mode": "generate", "outcome": "finished"}) == 1
    assert sample("studio_backend_jobs_total",
                  {"backend": "a", "mode": "generate", "outcome": "moved"}) == 1
    assert sample("studio_backend_jobs_total",
                  {"backend": "a", "mode": "edit", "outcome": "failed"}) == 1
    assert sample("studio_backend_model_swaps_total", {"backend": "a", "mode": "generate"}) == 1
    assert sample("studio_backend_job_seconds_count", {"backend": "b", "mode": "generate"}) == 1
    # the studio's totals keep their labels
    assert sample("studio_jobs_finished_total", {"mode": "generate", "surface": "api"}) == 1


def test_routing_setting_reaches_the_scheduler() -> None:
    settings = Settings.from_env({"COMFYUI_URL": "a=http://x:1,b=http://y:2",
                                  "STUDIO_ROUTING": "least-loaded"})
    studio = Studio({"a": _Client(), "b": _Client()}, settings,  # type: ignore[dict-item]
                    TemplateLibrary(settings.workflows_dir))
    assert studio.scheduler.config.routing == "least-loaded"
    assert studio.scheduler.servers() == ("a", "b")


def test_affinity_prefers_an_empty_server_to_evicting_a_warm_model() -> None:
    from backend.scheduler import Scheduler, SchedulerConfig

    scheduler = Scheduler(SchedulerConfig(position_refresh_s=0), servers=("a", "b", "c"))
    first = scheduler.enter("gen.safetensors", owner="x")
    second = scheduler.enter("edit.safetensors", owner="y")
    assert (first.server, second.server) == ("a", "b")
    first.leave()
    second.leave()
    scheduler.enter("gen.safetensors", owner="z").leave()      # a stays warm with gen
    # An edit job with a (gen) and c (nothing) free: c, not evicting a's model.
    busy = scheduler.enter("edit.safetensors", owner="p")      # b is warm: b
    assert busy.server == "b"
    other = scheduler.enter("edit.safetensors", owner="q")
    assert other.server == "c"


def test_with_every_server_down_jobs_still_go_and_fail_fast() -> None:
    from backend.scheduler import Scheduler, SchedulerConfig

    scheduler = Scheduler(SchedulerConfig(position_refresh_s=0), servers=("a", "b"))
    scheduler.set_available("a", False)
    scheduler.set_available("b", False)
    turn = scheduler.enter(None, owner="x")
    assert turn.released       # not held with no end: it goes, and its failure says why

"""Prometheus metrics for every job, whichever surface started it (UI, API, chat, CLI).

`StudioMetrics` is a job observer: `build_context` hands it to the Studio, which reports each
job's start, events and end to it, so every caller of `studio.run` is counted without a second
code path, and the surface label is the one the caller passed to `run(..., surface=…)`. Each
studio gets its own `CollectorRegistry` (never the global one), so several apps in one test
process do not collide.

Per ComfyUI server (`backend` = its label): `studio_backend_jobs_total{backend,mode,outcome}`
(each attempt's end there: finished, failed or moved away), `studio_backend_job_seconds`
(jobs finished there), `studio_backend_model_swaps_total`, `studio_backend_queue{state}`
(running, pending, and ours in flight), `studio_backend_vram_{used,total}_bytes`,
`studio_backend_up`; and `studio_failovers_total{from_backend,to_backend,reason}`.
`studio_oom_retries_total{mode,step}`: the out-of-memory steps jobs took (move, free, gguf,
smaller), from Finished/Failed.oom_steps. The older
series without `backend` stay as they were: the studio's totals.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from backend.events import (
    Failed,
    Finished,
    JobEvent,
    JobInfo,
    ModelsLoaded,
    Moved,
    Outcome,
    Surface,
)
from backend.monitor import MonitorSnapshot

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
SURFACES: tuple[Surface, ...] = get_args(Surface)
# Image jobs take seconds to minutes: buckets from a cached 1-step run to a cold 10-minute one.
LATENCY_BUCKETS = (0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, float("inf"))


class StudioMetrics:
    """The studio's collectors, fed as a job observer and, at scrape time, from the monitor."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "studio_jobs", "Jobs started, per mode and surface", ["mode", "surface"], registry=r
        )
        self.finished = Counter(
            "studio_jobs_finished", "Jobs that produced images", ["mode", "surface"], registry=r
        )
        self.errors = Counter(
            "studio_job_errors",
            "Jobs that failed, per mode, surface and kind (Failed.kind)",
            ["mode", "surface", "kind"],
            registry=r,
        )
        self.latency = Histogram(
            "studio_job_seconds",
            "Wall time of successful jobs, from submission to images",
            ["mode", "surface"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.swaps = Counter(
            "studio_model_swaps",
            "Jobs that loaded another diffusion model (ModelsLoaded.swapped: past the loaders)",
            ["mode"],
            registry=r,
        )
        self.in_progress = Gauge(
            "studio_jobs_in_progress", "Jobs being followed right now", ["surface"], registry=r
        )
        self.queue = Gauge(
            "studio_comfyui_queue", "ComfyUI queue length", ["state"], registry=r
        )
        self.vram_used = Gauge("studio_vram_used_bytes", "GPU memory in use", registry=r)
        self.vram_total = Gauge("studio_vram_total_bytes", "GPU memory in total", registry=r)
        self.comfy_up = Gauge("studio_comfyui_up", "1 when ComfyUI answered the last poll", registry=r)
        # -- per ComfyUI server ("backend": its label) --
        self.backend_jobs = Counter(
            "studio_backend_jobs",
            "Attempts that ended on a ComfyUI server: finished, failed, or moved away",
            ["backend", "mode", "outcome"], registry=r,
        )
        self.backend_latency = Histogram(
            "studio_backend_job_seconds",
            "Wall time of jobs that finished on a server, from submission to images",
            ["backend", "mode"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.backend_swaps = Counter(
            "studio_backend_model_swaps", "Jobs that loaded another diffusion model there",
            ["backend", "mode"], registry=r,
        )
        self.failovers = Counter(
            "studio_failovers",
            "Jobs moved to another server after theirs failed under them (Moved events)",
            ["from_backend", "to_backend", "reason"], registry=r,
        )
        self.oom_steps = Counter(
            "studio_oom_retries",
            "Out-of-memory remedies the studio tried (STUDIO_OOM_RETRY), per step: move, "
            "free, gguf, smaller",
            ["mode", "step"], registry=r,
        )
        self.backend_queue = Gauge(
            "studio_backend_queue",
            "A server's ComfyUI queue (running, pending) and our jobs in flight there (studio)",
            ["backend", "state"], registry=r,
        )
        self.backend_vram_used = Gauge(
            "studio_backend_vram_used_bytes", "GPU memory in use", ["backend"], registry=r
        )
        self.backend_vram_total = Gauge(
            "studio_backend_vram_total_bytes", "GPU memory in total", ["backend"], registry=r
        )
        self.backend_up = Gauge(
            "studio_backend_up", "1 when the server answered the last poll", ["backend"],
            registry=r,
        )

    # -- the job observer ------------------------------------------------------------------
    def job_started(self, job: JobInfo) -> None:
        self.requests.labels(job.mode, job.surface).inc()
        self.in_progress.labels(job.surface).inc()

    def job_event(self, job: JobInfo, event: JobEvent) -> None:
        if isinstance(event, Finished | Failed):
            for step in event.oom_steps:
                self.oom_steps.labels(job.mode, step).inc()
        if isinstance(event, ModelsLoaded) and event.swapped:
            self.swaps.labels(job.mode).inc()
            if event.server:
                self.backend_swaps.labels(event.server, job.mode).inc()
        elif isinstance(event, Finished):
            seconds = time.monotonic() - job.started
            self.finished.labels(job.mode, job.surface).inc()
            self.latency.labels(job.mode, job.surface).observe(seconds)
            if event.server:
                self.backend_jobs.labels(event.server, job.mode, "finished").inc()
                self.backend_latency.labels(event.server, job.mode).observe(seconds)
        elif isinstance(event, Failed):
            self.errors.labels(job.mode, job.surface, event.kind).inc()
            if event.server:
                self.backend_jobs.labels(event.server, job.mode, "failed").inc()
        elif isinstance(event, Moved):
            self.failovers.labels(event.from_server, event.to_server, event.reason).inc()
            self.backend_jobs.labels(event.from_server, job.mode, "moved").inc()

    def job_ended(self, job: JobInfo, outcome: Outcome) -> None:
        self.in_progress.labels(job.surface).dec()
        if outcome == "abandoned":
            # Cancelled or crashed without a Failed event: still an error for the graphs.
            self.errors.labels(job.mode, job.surface, "cancelled").inc()

    # -- scraping ----------------------------------------------------------------------------
    def update_from_snapshot(self, snap: MonitorSnapshot) -> None:
        """Copy the monitor's latest poll into the gauges (done at scrape time)."""
        self.comfy_up.set(1 if snap.online else 0)
        self.queue.labels("running").set(len(snap.queue_running))
        self.queue.labels("pending").set(len(snap.queue_pending))
        if snap.vram_total is not None:
            self.vram_total.set(snap.vram_total)
            if snap.vram_free is not None:
                self.vram_used.set(snap.vram_total - snap.vram_free)

    def update_from_servers(self, snaps: Mapping[str, MonitorSnapshot]) -> None:
        """Each server's latest poll into the per-backend gauges (at scrape time)."""
        for label, snap in snaps.items():
            self.backend_up.labels(label).set(1 if snap.online else 0)
            self.backend_queue.labels(label, "running").set(len(snap.queue_running))
            self.backend_queue.labels(label, "pending").set(len(snap.queue_pending))
            self.backend_queue.labels(label, "studio").set(snap.studio_running)
            if snap.vram_total is not None:
                self.backend_vram_total.labels(label).set(snap.vram_total)
                if snap.vram_free is not None:
                    self.backend_vram_used.labels(label).set(snap.vram_total - snap.vram_free)

    def render(self) -> bytes:
        return generate_latest(self.registry)

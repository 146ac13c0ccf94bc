"""Prometheus metrics for every job, whichever surface started it (UI, API, CLI).

Each studio gets its own `CollectorRegistry` (never the global one), so several apps in one test
process do not collide. Jobs are counted by wrapping `studio.run` once (`instrument`): the UI,
the API and the CLI all call `ctx.studio.run(request)`, so all of them are counted without a
second code path. The surface label comes from a context variable the API sets
(`with surface("api"):`); anything that does not set it counts as "ui".
"""

from __future__ import annotations

import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextvars import ContextVar
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
SURFACES = ("ui", "api", "cli")
# Image jobs take seconds to minutes: buckets from a cached 1-step run to a cold 10-minute one.
LATENCY_BUCKETS = (0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, float("inf"))

_surface: ContextVar[str] = ContextVar("studio_surface", default="ui")

# Request class name → mode, for requests that do not carry a `mode` attribute.
_MODE_BY_CLASS = {
    "GenerateRequest": "generate",
    "EditRequest": "edit",
    "MultiRefRequest": "multiref",
    "RemoveBackgroundRequest": "remove_background",
    "RegionEditRequest": "region_edit",
    "InpaintRequest": "inpaint",
    "OutpaintRequest": "outpaint",
}


@contextlib.contextmanager
def surface(name: str) -> Iterator[None]:
    """Label the jobs started inside this block (read when `studio.run` is called)."""
    token = _surface.set(name)
    try:
        yield
    finally:
        _surface.reset(token)


def mode_of(request: object) -> str:
    mode = getattr(request, "mode", None)
    if isinstance(mode, str):
        return mode
    return _MODE_BY_CLASS.get(type(request).__name__, "unknown")


class StudioMetrics:
    """The studio's collectors and the event observer that feeds them."""

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
            "Jobs that had to load models first (Started.loading_models)",
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

    async def observe(
        self, mode: str, surface_name: str, events: AsyncIterator[Any]
    ) -> AsyncIterator[Any]:
        """Pass `events` through unchanged while counting them. Closing this closes `events`."""
        self.requests.labels(mode, surface_name).inc()
        started = time.monotonic()
        outcome = "abandoned"
        self.in_progress.labels(surface_name).inc()
        try:
            async for event in events:
                kind = type(event).__name__
                if kind == "Started" and getattr(event, "loading_models", False):
                    self.swaps.labels(mode).inc()
                elif kind == "Finished":
                    outcome = "finished"
                    self.finished.labels(mode, surface_name).inc()
                    self.latency.labels(mode, surface_name).observe(time.monotonic() - started)
                elif kind == "Failed":
                    outcome = "failed"
                    self.errors.labels(mode, surface_name, getattr(event, "kind", "unknown")).inc()
                yield event
        except BaseException:
            if outcome == "abandoned":
                # Cancelled or crashed without a Failed event: still an error for the graphs.
                outcome = "failed"
                self.errors.labels(mode, surface_name, "cancelled").inc()
            raise
        finally:
            self.in_progress.labels(surface_name).dec()
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()

    def update_from_snapshot(self, snap: Any) -> None:
        """Copy the monitor's latest poll into the gauges (done at scrape time)."""
        self.comfy_up.set(1 if snap.online else 0)
        self.queue.labels("running").set(len(snap.queue_running))
        self.queue.labels("pending").set(len(snap.queue_pending))
        if snap.vram_total is not None:
            self.vram_total.set(snap.vram_total)
            if snap.vram_free is not None:
                self.vram_used.set(snap.vram_total - snap.vram_free)

    def render(self) -> bytes:
        return generate_latest(self.registry)


_by_studio: weakref.WeakKeyDictionary[object, StudioMetrics] = weakref.WeakKeyDictionary()


def metrics_for(studio: object) -> StudioMetrics:
    """The one `StudioMetrics` of this studio (created on first use)."""
    metrics = _by_studio.get(studio)
    if metrics is None:
        metrics = _by_studio[studio] = StudioMetrics()
    return metrics


def instrument(studio: Any) -> StudioMetrics:
    """Wrap `studio.run` (on this instance, once) so every job is counted. Idempotent."""
    metrics = metrics_for(studio)
    run: Callable[..., AsyncIterator[Any]] = studio.run
    if getattr(run, "_studio_metrics", None) is metrics:
        return metrics

    def counted_run(request: object, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        # Read the surface now, in the caller's context, not when the stream is first pulled.
        return metrics.observe(mode_of(request), _surface.get(), run(request, *args, **kwargs))

    counted_run._studio_metrics = metrics  # type: ignore[attr-defined]
    studio.run = counted_run
    log.debug("metrics: studio.run instrumented")
    return metrics

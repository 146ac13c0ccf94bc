"""The apps folder kept in step with the registry: every `*.json` there is a mode `app-<stem>`
(a broken one too: not ready, with the reason). `sync()` re-reads only files whose size or
mtime changed (plus every app once `/object_info` is first known, for the real limits and
the class checks); `run()` calls it on a timer, so a file dropped into a running studio
becomes a tab and an API model within one interval, and a deleted one goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from backend.apps.app import App, AppError, load_app, mode_name, title_from_stem
from backend.apps.controls import Control, check_output, controls_of
from backend.apps.mode import APP_ORDER, AppRequest, app_spec, broken_spec
from backend.modes import ModeRegistry, ModeSpec
from backend.modes.registry import NAME_PATTERN
from backend.requests import RequestBase

log = logging.getLogger(__name__)
Stamp = tuple[int, int]


class ObjectInfoSource(Protocol):
    async def object_info(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class AppEntry:
    """One file of the folder: its app and controls, or the problem that keeps it from
    running (`registered` is False when even its name cannot be a mode)."""

    name: str
    title: str
    path: Path
    stamp: Stamp
    app: App | None
    controls: tuple[Control, ...]
    problem: str | None
    checked: bool          # validated against /object_info
    registered: bool
    order: int


class AppShelf:
    def __init__(
        self, directory: Path, registry: ModeRegistry, server: ObjectInfoSource | None = None
    ) -> None:
        self.directory = directory
        self.registry = registry
        self.server = server
        self.entries: dict[Path, AppEntry] = {}
        self.version = 0           # bumps on every change (the page re-reads its app list)
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    # -- reading -----------------------------------------------------------------------------
    def apps(self) -> list[AppEntry]:
        """Every file's entry, by title."""
        return sorted(self.entries.values(), key=lambda e: (e.title.lower(), e.name))

    def find(self, name: str) -> AppEntry | None:
        return next((e for e in self.entries.values() if e.name == name), None)

    # -- keeping in step ---------------------------------------------------------------------
    async def sync(self, *, force: bool = False) -> bool:
        """Re-read what changed (everything with `force`); True when something did."""
        async with self._lock:
            stamps = self._stamps()
            unchecked = any(not e.checked and e.app is not None for e in self.entries.values())
            changed = force or stamps.keys() != self.entries.keys() or any(
                self.entries[p].stamp != s for p, s in stamps.items() if p in self.entries)
            if not changed and not unchecked:
                return False
            info = await self._object_info()
            if not changed and info is None:
                return False     # still no /object_info: nothing new to check against
            self.apply(stamps, info, force=force or info is not None and unchecked)
            return True

    def apply(self, stamps: Mapping[Path, Stamp], object_info: Mapping[str, Any] | None,
              *, force: bool = False) -> None:
        """Load changed files and bring the registry in line (sync, for tests and sync())."""
        changed = False
        for path in list(self.entries):
            if path not in stamps:
                self._drop(self.entries.pop(path))
                changed = True
        for order, (path, stamp) in enumerate(sorted(stamps.items())):
            old = self.entries.get(path)
            if old is not None and old.stamp == stamp and not force:
                continue
            entry = self._load(path, stamp, object_info, APP_ORDER + order)
            if old is not None:
                self._drop(old)
            self._register(entry)
            self.entries[path] = entry
            changed = True
        if changed:
            self.version += 1

    def _stamps(self) -> dict[Path, Stamp]:
        if not self.directory.is_dir():
            return {}
        out: dict[Path, Stamp] = {}
        for path in self.directory.glob("*.json"):
            with contextlib.suppress(OSError):   # removed between listing and stat
                st = path.stat()
                out[path] = (st.st_mtime_ns, st.st_size)
        return out

    async def _object_info(self) -> dict[str, Any] | None:
        if self.server is None:
            return None
        try:
            return await self.server.object_info()
        except Exception as exc:   # ComfyUI down: apps load without limits, checked later
            log.debug("apps: /object_info not available (%s)", exc)
            return None

    def _load(self, path: Path, stamp: Stamp, object_info: Mapping[str, Any] | None,
              order: int) -> AppEntry:
        name = mode_name(path)
        stem = path.name.removesuffix(".json")
        registrable = bool(NAME_PATTERN.match(name))
        try:
            app = load_app(path)
            controls = controls_of(app, object_info)
            check_output(app, object_info)
        except AppError as exc:
            log.warning("workflow app %s: %s", path.name, exc.message)
            return AppEntry(name, title_from_stem(stem), path, stamp, None, (), exc.message,
                            object_info is not None, registrable, order)
        log.info("workflow app %s: %s (%s)", app.name, app.title,
                 ", ".join(c.name for c in controls) or "no controls")
        return AppEntry(app.name, app.title, path, stamp, app, controls, None,
                        object_info is not None, True, order)

    def _register(self, entry: AppEntry) -> None:
        if not entry.registered:
            return
        spec: ModeSpec[AppRequest]
        if entry.app is not None:
            spec = app_spec(entry.app, entry.controls, entry.order)
        else:
            spec = broken_spec(entry.name, entry.title, entry.problem or "", entry.order)
        existing = self.registry.find(entry.name)
        if existing is not None and not _is_app(existing):
            log.warning("workflow app %s: a built-in mode has that name", entry.path.name)
            return
        self.registry.unregister(entry.name)
        self.registry.register(spec)

    def _drop(self, entry: AppEntry) -> None:
        existing = self.registry.find(entry.name)
        if existing is not None and _is_app(existing):
            self.registry.unregister(entry.name)

    def unregister_all(self) -> None:
        for entry in self.entries.values():
            self._drop(entry)
        self.entries.clear()

    # -- on a timer --------------------------------------------------------------------------
    def start(self, interval_s: float, on_change: Callable[[], None] | None = None) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(interval_s, on_change))

    async def _run(self, interval_s: float, on_change: Callable[[], None] | None) -> None:
        while True:
            try:
                if await self.sync() and on_change is not None:
                    on_change()
            except Exception:   # one bad pass must not end the watching
                log.exception("apps: the folder could not be read")
            await asyncio.sleep(interval_s)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.unregister_all()


def _is_app(spec: ModeSpec[RequestBase]) -> bool:
    return issubclass(spec.request_type, AppRequest)

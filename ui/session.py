"""Which ComfyUI prompts belong to which browser session (from the Queued events).

The sidebar uses it to say where *your* jobs stand in the shared queue. Kept in the
process (keyed by Gradio's session hash), not in gr.State, so the cheap timer handler can
read it without the run handler having to yield state updates.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class SessionJob:
    prompt_id: str      # "" while the job waits in the studio's own queue
    mode: str
    position: int = 0   # jobs ahead of it when it was last queued


class SessionJobs:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, dict[str, SessionJob]] = {}

    def add(
        self, session: str | None, job: str, prompt_id: str, mode: str, position: int = 0
    ) -> None:
        """A job's current prompt (a region edit runs two prompts, one after the other)."""
        if not session:
            return
        with self._lock:
            self._jobs.setdefault(session, {})[job] = SessionJob(prompt_id, mode, position)

    def discard(self, session: str | None, job: str) -> None:
        if not session:
            return
        with self._lock:
            jobs = self._jobs.get(session)
            if jobs is not None:
                jobs.pop(job, None)
                if not jobs:
                    del self._jobs[session]

    def of(self, session: str | None) -> tuple[SessionJob, ...]:
        if not session:
            return ()
        with self._lock:
            return tuple(self._jobs.get(session, {}).values())

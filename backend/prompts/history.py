"""Each person's recent prompts: the last HISTORY_SIZE distinct ones, newest first, kept in
`<STUDIO_DATA_DIR>/prompts/<sha256(person)[:16]>.json` (the person string never lands in a
file name). Small JSON files written whole (write, then rename), under one lock per process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)

HISTORY_SIZE = 50
FOLDER = "prompts"


class PromptHistory:
    def __init__(self, data_dir: Path, size: int = HISTORY_SIZE) -> None:
        self.folder = data_dir / FOLDER
        self.size = size
        self._lock = threading.Lock()

    def _path(self, person: str) -> Path:
        return self.folder / f"{hashlib.sha256(person.encode()).hexdigest()[:16]}.json"

    def _read(self, person: str) -> list[str]:
        try:
            raw = json.loads(self._path(person).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.warning("prompt history unreadable, starting afresh: %s", exc)
            return []
        return [p for p in raw if isinstance(p, str)] if isinstance(raw, list) else []

    def add(self, person: str, prompt: str) -> None:
        """Remember `prompt` as the newest (an earlier copy moves up, not repeated)."""
        prompt = prompt.strip()
        if not prompt:
            return
        with self._lock:
            prompts = [p for p in self._read(person) if p != prompt]
            prompts.insert(0, prompt)
            path = self._path(person)
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                temp = path.with_suffix(".tmp")
                temp.write_text(json.dumps(prompts[: self.size], ensure_ascii=False),
                                encoding="utf-8")
                os.replace(temp, path)
            except OSError as exc:     # a full disk must not stop a run
                log.warning("prompt history not saved: %s", exc)

    def recent(self, person: str, query: str = "") -> list[str]:
        """Newest first; with `query`, only the prompts containing it (any case)."""
        with self._lock:
            prompts = self._read(person)
        needle = query.strip().casefold()
        return [p for p in prompts if needle in p.casefold()] if needle else prompts

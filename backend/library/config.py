"""The library's settings, read from the environment (the lead folds them into `Settings`).

`STUDIO_DATA_DIR`          the data folder (default `./data`; created by `Library.open()`)
`STUDIO_LIBRARY`           `shared` (default) | `per-browser` | `off`
`STUDIO_LIBRARY_MAX_GB`    prune the oldest unstarred items above this size (off by default)
`STUDIO_LIBRARY_MAX_DAYS`  prune unstarred items older than this (off by default)

`off` keeps today's behaviour (nothing kept past the process): the Library keeps the same API
but lives in a fresh folder of the system temp dir that `close()` removes, with a 24 h age
limit like the old result sweep. Callers never branch on it. `shared` and `per-browser` store
the same way; they only differ in the owner the UI passes (see `owner_for`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

LibraryMode = Literal["shared", "per-browser", "off"]
LIBRARY_MODES: tuple[LibraryMode, ...] = ("shared", "per-browser", "off")
DEFAULT_DATA_DIR = Path("data")
GB = 1024**3
DAY_S = 24 * 3600.0
# `off` mode: results live as long as they did in the system temp dir before the library.
OFF_MAX_AGE_S = DAY_S
SHARED_OWNER = "shared"


@dataclass(frozen=True)
class LibraryConfig:
    data_dir: Path = DEFAULT_DATA_DIR
    mode: LibraryMode = "shared"
    max_bytes: int | None = None        # None = no size limit
    max_age_s: float | None = None      # None = no age limit

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LibraryConfig:
        env = os.environ if env is None else env
        mode = (env.get("STUDIO_LIBRARY") or "shared").strip().lower()
        if mode not in LIBRARY_MODES:
            raise ValueError(
                f"STUDIO_LIBRARY must be one of {', '.join(LIBRARY_MODES)}, not {mode!r}."
            )
        max_gb = _positive(env, "STUDIO_LIBRARY_MAX_GB")
        max_days = _positive(env, "STUDIO_LIBRARY_MAX_DAYS")
        return cls(
            data_dir=Path(env.get("STUDIO_DATA_DIR") or DEFAULT_DATA_DIR).expanduser(),
            mode=mode,
            max_bytes=None if max_gb is None else int(max_gb * GB),
            max_age_s=None if max_days is None else max_days * DAY_S,
        )

    @property
    def persistent(self) -> bool:
        """False for `off`: the library is a per-process scratch store."""
        return self.mode != "off"

    @property
    def effective_max_age_s(self) -> float | None:
        if self.max_age_s is None and not self.persistent:
            return OFF_MAX_AGE_S
        return self.max_age_s

    def owner_for(
        self, *, user: str | None, browser_id: str | None, session_id: str
    ) -> str:
        """The owner a UI request stores and lists under (the API passes its own owner).

        A logged-in user (STUDIO_AUTH) always owns their items; without auth, `shared` is one
        library for everyone, `per-browser` keys on the browser's random id (falling back to the
        session), and `off` keeps each session's items apart, like today's history.
        """
        if user:
            return f"user:{user}"
        if self.mode == "shared":
            return SHARED_OWNER
        if self.mode == "per-browser" and browser_id:
            return f"browser:{browser_id}"
        return f"session:{session_id}"


def _positive(env: Mapping[str, str], name: str) -> float | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {raw!r}.") from None
    if value < 0 or value != value:
        raise ValueError(f"{name} must be zero (off) or more, not {raw!r}.")
    return value or None

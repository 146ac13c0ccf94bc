"""A stable id for this studio installation, kept across restarts.

Every prompt the studio posts to ComfyUI carries it (backend/comfy/orphans.py), so a restarted
studio can find the prompts its killed predecessor left in ComfyUI's queue — and never touch
anyone else's. It lives in `<data dir>/studio-id`; the data dir is `$STUDIO_DATA_DIR` or
`./data`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

ID_FILE = "studio-id"
_VALID_ID = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")


def load_or_create_studio_id(data_dir: Path, *, workflows_dir: Path | None = None) -> str:
    """The id in `data_dir/studio-id`, created (with the folder) on first use.

    A folder the studio cannot write falls back to an id derived from the host name and the
    workflows folder: stable for the same install on the same machine, logged so the operator
    knows orphan clean-up depends on it.
    """
    path = data_dir / ID_FILE
    try:
        existing = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        existing = ""
    except OSError as exc:
        return _fallback_id(data_dir, workflows_dir, f"cannot read {path}: {exc}")
    if _VALID_ID.match(existing):
        return existing
    if existing:
        log.warning("%s does not hold a valid studio id; writing a new one", path)
    studio_id = uuid.uuid4().hex
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{ID_FILE}.{os.getpid()}.tmp")
        tmp.write_text(studio_id + "\n", encoding="utf-8")
        os.replace(tmp, path)   # atomic: two studios starting at once never see half an id
    except OSError as exc:
        return _fallback_id(data_dir, workflows_dir, f"cannot write {path}: {exc}")
    # Another process may have won the race to create it: use whatever is there now.
    try:
        written = path.read_text(encoding="utf-8").strip()
    except OSError:
        written = studio_id
    log.info("new studio id %s (kept in %s)", written, path)
    return written if _VALID_ID.match(written) else studio_id


def _fallback_id(data_dir: Path, workflows_dir: Path | None, why: str) -> str:
    seed = f"{socket.gethostname()}|{(workflows_dir or data_dir).resolve()}"
    studio_id = "host-" + hashlib.sha256(seed.encode()).hexdigest()[:24]
    log.warning("%s; using studio id %s derived from the host name and %s instead", why,
                studio_id, workflows_dir or data_dir)
    return studio_id

"""ui/files.py: library files are served from Gradio's cache without a second copy."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import re  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from ui import files  # noqa: E402


def test_a_library_file_is_linked_into_the_cache_once(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "cache"))
    source = tmp_path / "data" / "library" / "abc" / "banana-generate-7.png"
    source.parent.mkdir(parents=True)
    source.write_bytes(b"\x89PNG fake")
    served = Path(files.served(source))
    assert served == Path(files.served(source))                  # the same link again
    assert served.read_bytes() == source.read_bytes()
    assert served.stat().st_ino == source.stat().st_ino          # a link, not a copy
    assert served.is_relative_to(tmp_path / "cache" / "banana-library")
    assert re.fullmatch(r"[0-9a-f]{64}", served.parent.name)     # not guessable from the id
    assert served.name == source.name                            # downloads keep the name

"""Shared fixtures: a fresh fake ComfyUI per test, and the recorded-data folder."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.fake_comfy import FakeComfy  # noqa: E402

FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures" / "comfy"


@pytest.fixture
def fake_comfy() -> Iterator[FakeComfy]:
    """A started FakeComfy on a free port (fresh folders, no delays); closed afterwards."""
    fake = FakeComfy().start()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def fixtures_dir() -> Path:
    """tests/fixtures/comfy: the recorded real-server data."""
    return FIXTURES_DIR

"""Shared fixtures: a fresh fake ComfyUI per test, and the recorded-data folder."""

from __future__ import annotations

import os
import tempfile  # noqa: E402

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Every studio a test builds keeps its library and studio id here, never in the working tree
# (a test that needs its own folder sets STUDIO_DATA_DIR itself; the autouse fixture below
# gives each test a fresh one).
os.environ["STUDIO_DATA_DIR"] = tempfile.mkdtemp(prefix="studio-test-data-")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.fake_comfy import FakeComfy  # noqa: E402

FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures" / "comfy"


@pytest.fixture(autouse=True)
def fresh_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh data folder (library, studio id) for every studio a test builds."""
    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path_factory.mktemp("data")))


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under `-n` (xdist, `--dist loadgroup`): the browser tests run one after another on one
    worker (they share a package studio and chromium, and a second browser beside them makes
    both slow and flaky on 2 cores), the matrix folder on one (its session studio is built
    once), and every other file stays whole on one worker (module-scoped fixtures)."""
    for item in items:
        parts = Path(str(item.path)).relative_to(Path(__file__).parent).parts
        group = parts[0] if parts[0] in ("browser", "matrix") else "/".join(parts)
        item.add_marker(pytest.mark.xdist_group(group))

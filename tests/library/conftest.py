"""Library fixtures: a fresh data folder per test, items that are cheap to make, a clock the
test moves."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

import pytest
from PIL import Image

from backend.library import (
    InputFile,
    JsonScalar,
    Library,
    LibraryConfig,
    NewItem,
    Surface,
)

START = 1_780_000_000.0     # 2026-05-28: a fixed "now" for created times


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        self.now += 0.001     # every save gets its own time, in order
        return self.now


def jpeg_bytes(size: tuple[int, int] = (40, 30), color: str = "blue") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def new_item(
    owner: str = "alice",
    prompt: str = "a lighthouse at dusk",
    *,
    mode: str = "generate",
    surface: Surface = "ui",
    parent_id: str | None = None,
    size: tuple[int, int] = (48, 32),
    params: Mapping[str, JsonScalar] | None = None,
    inputs: tuple[InputFile, ...] = (),
    mask: bool = False,
    noisy: bool = False,
) -> NewItem:
    values: dict[str, JsonScalar] = {"mode": mode, "prompt": prompt, "seed": 7, "steps": 20,
                                     "cfg": 2.5}
    values.update(params or {})
    extras = {"mask": Image.new("L", size, 255)} if mask else {}
    return NewItem(
        owner=owner, surface=surface, mode=mode,
        image=(Image.effect_noise(size, 60).convert("RGB") if noisy      # ~3 bytes a pixel
               else Image.new("RGB", size, "orange")),
        params=values, workflow={"3": {"class_type": "KSampler", "inputs": {"seed": 7}}},
        inputs=inputs, extras=extras, timings={"total_s": 1.25}, parent_id=parent_id,
        notes=("scaled to 1 MP",),
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_library(tmp_path: Path, clock: Clock) -> Callable[..., Library]:
    def make(data_dir: Path | None = None, **config: object) -> Library:
        cfg = LibraryConfig(data_dir=data_dir or tmp_path / "data", **config)
        return Library(cfg, clock=clock)
    return make


@pytest.fixture
async def library(make_library: Callable[..., Library]) -> AsyncIterator[Library]:
    lib = make_library()
    await lib.open()
    try:
        yield lib
    finally:
        await lib.close()

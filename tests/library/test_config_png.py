"""LibraryConfig from the environment, and the PNG/thumbnail helpers."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from backend.library import LibraryConfig, png
from backend.library.config import DAY_S, GB
from backend.modes import REGISTRY

KNOWN = REGISTRY.parameter_names()


def test_defaults() -> None:
    config = LibraryConfig.from_env({})
    assert config == LibraryConfig(data_dir=Path("data"), mode="shared", max_bytes=None,
                                   max_age_s=None)
    assert config.persistent and config.effective_max_age_s is None


def test_every_setting() -> None:
    config = LibraryConfig.from_env({
        "STUDIO_DATA_DIR": "/srv/studio", "STUDIO_LIBRARY": "Per-Browser",
        "STUDIO_LIBRARY_MAX_GB": "1.5", "STUDIO_LIBRARY_MAX_DAYS": "30"})
    assert config == LibraryConfig(Path("/srv/studio"), "per-browser", int(1.5 * GB), 30 * DAY_S)


def test_zero_means_off_and_off_mode_keeps_a_day() -> None:
    config = LibraryConfig.from_env({"STUDIO_LIBRARY": "off", "STUDIO_LIBRARY_MAX_GB": "0",
                                     "STUDIO_LIBRARY_MAX_DAYS": ""})
    assert config.max_bytes is None and config.max_age_s is None
    assert not config.persistent and config.effective_max_age_s == DAY_S


@pytest.mark.parametrize("env", [
    {"STUDIO_LIBRARY": "everyone"}, {"STUDIO_LIBRARY_MAX_GB": "lots"},
    {"STUDIO_LIBRARY_MAX_DAYS": "-1"}, {"STUDIO_LIBRARY_MAX_GB": "nan"},
])
def test_bad_values_name_the_variable(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="STUDIO_LIBRARY"):
        LibraryConfig.from_env(env)


def test_owner_for() -> None:
    shared, browser, off = (LibraryConfig(mode=m) for m in ("shared", "per-browser", "off"))
    kw = {"browser_id": "b1", "session_id": "s1"}
    assert shared.owner_for(user="ann", **kw) == "user:ann"        # auth wins everywhere
    assert browser.owner_for(user="ann", **kw) == "user:ann"
    assert shared.owner_for(user=None, **kw) == "shared"
    assert browser.owner_for(user=None, **kw) == "browser:b1"
    assert browser.owner_for(user=None, browser_id=None, session_id="s1") == "session:s1"
    assert off.owner_for(user=None, **kw) == "session:s1"


def test_read_tolerates_foreign_and_broken_files() -> None:
    a1111 = io.BytesIO()
    from PIL import PngImagePlugin
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat, Steps: 20, Sampler: Euler")
    Image.new("RGB", (4, 4)).save(a1111, format="PNG", pnginfo=info)
    assert png.read_parameters(a1111.getvalue(), KNOWN) is None
    assert png.read_parameters(b"not a png", KNOWN) is None
    assert png.read_workflow(b"") is None


def test_thumbnail_is_small_webp_keeping_aspect() -> None:
    data = png.thumbnail_webp(Image.new("RGB", (1024, 512), "green"))
    with Image.open(io.BytesIO(data)) as thumb:
        assert thumb.format == "WEBP" and thumb.size == (320, 160)
    tiny = png.thumbnail_webp(Image.new("L", (50, 80)))
    with Image.open(io.BytesIO(tiny)) as thumb:
        assert thumb.size == (50, 80)       # never enlarged


def test_plain_png_for_masks_and_odd_modes() -> None:
    for image in (Image.new("L", (8, 8), 255), Image.new("CMYK", (8, 8))):
        with Image.open(io.BytesIO(png.plain_png_bytes(image))) as back:
            assert back.format == "PNG" and back.mode in ("L", "RGB")

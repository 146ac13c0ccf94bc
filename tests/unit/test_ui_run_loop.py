"""The UI's run loop through its real handlers (ui/runner.py, ui/follow.py, ui/app.py) against
the fake ComfyUI: a page's jobs are followed in every tab and land once, a batch has
consecutive seeds and is picked from, a result that could not be kept still shows, per-page
state is refused to another login, and a closed page stops its jobs only when nobody could
see their results."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import asyncio  # noqa: E402
import io  # noqa: E402
from collections.abc import AsyncIterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from backend import limits  # noqa: E402
from backend.context import StudioContext, build_context  # noqa: E402
from backend.desk import JobState  # noqa: E402
from backend.library import ItemQuery, LibraryConfig, LibrarySaveError  # noqa: E402
from backend.modes.generate import GenerateRequest  # noqa: E402
from backend.settings import Settings  # noqa: E402
from tests.fake_comfy import FakeComfy  # noqa: E402
from ui.app import StudioPage, build_page, page_gone  # noqa: E402
from ui.identity import visitor_for  # noqa: E402
from ui.pages import SessionRefused  # noqa: E402
from ui.restore import item_updates  # noqa: E402
from ui.runner import batch_of, pick, show_landed, stop, submit  # noqa: E402
from ui.tabspec import Component, TabSpec  # noqa: E402


@pytest.fixture
async def studio(fake_comfy: FakeComfy, tmp_path: Path) -> AsyncIterator[StudioPage]:
    settings = Settings(comfy_url=fake_comfy.url, job_timeout_s=30.0,
                        library=LibraryConfig(data_dir=tmp_path / "data"))
    page = await _open(settings)
    try:
        yield page
    finally:
        await _close(page.shared.ctx)


async def _open(settings: Settings) -> StudioPage:
    ctx = build_context(settings)
    await ctx.library.open()
    return build_page(ctx)


async def _close(ctx: StudioContext) -> None:
    await ctx.desk.aclose()
    await ctx.library.close()
    await ctx.client.aclose()


def request(session: str = "page-1", user: str | None = None) -> gr.Request:
    return gr.Request(username=user, session_hash=session)


def read(path: str) -> bytes:
    return Path(path).read_bytes()


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (40, 90, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


def values(tab: TabSpec, **by_name: Any) -> dict[Component, Any]:
    """What the page sends for a Run: every control at its default, some set by name."""
    out: dict[Component, Any] = {c: getattr(c, "value", None) for c in tab.fields.values()}
    for name, value in by_name.items():
        if name == "batch":
            assert tab.advanced is not None and tab.advanced.batch is not None
            out[tab.advanced.batch] = value
        else:
            out[tab.fields[name]] = value
    return out


async def follow(page: StudioPage, req: gr.Request) -> dict[Component, Any]:
    """Run the page's follower to its end; its last values by component."""
    streamed = [values async for values in page.follower.stream(None, req)]
    return dict(zip(page.follower.outputs, streamed[-1], strict=True))


async def test_two_overlapping_jobs_land_in_their_tabs_once(studio: StudioPage,
                                                             fake_comfy: FakeComfy) -> None:
    fake_comfy.set_delays(step=0.01)
    generate, edit = studio.specs["generate"], studio.specs["edit"]
    req = request()
    answer = await submit(studio.shared, generate, values(
        generate, prompt="a fox", width=256, height=256, steps=4), req)
    assert answer[generate.controls.run] == "Queue" and answer[generate.panel.info] == ""
    upload = Path(studio.shared.ctx.settings.library.data_dir) / "in.png"
    upload.parent.mkdir(parents=True, exist_ok=True)
    upload.write_bytes(png())
    await submit(studio.shared, edit, values(edit, image=str(upload), prompt="night", steps=2),
                 req)
    shown = await follow(studio, req)

    for tab in (generate, edit):
        assert "Done." in shown[tab.panel.status]
        assert shown[tab.controls.run] == str(tab.controls.run.value)   # no longer "Queue"
        landed = await show_landed(studio.shared, tab, shown[tab.panel.landed], None, req)
        assert str(landed[tab.panel.result]).endswith(".png")
        assert "Seed" in landed[tab.panel.info]
    assert shown[studio.follower.history_token] == "2"                  # two saves
    assert shown[studio.follower.strip] == ""                           # nothing waiting


async def test_a_batch_has_consecutive_seeds_and_a_pick(studio: StudioPage) -> None:
    tab, req = studio.specs["generate"], request()
    await submit(studio.shared, tab, values(tab, prompt="four", width=256, height=256, steps=1,
                                             randomize=False, seed=41, batch=4), req)
    shown = await follow(studio, req)
    landed = await show_landed(studio.shared, tab, shown[tab.panel.landed], None, req)
    assert "Picture 1 of 4" in landed[tab.panel.info]
    grid = landed[tab.panel.grid]
    assert [c for _, c in grid["value"]] == ["Seed 41", "Seed 42", "Seed 43", "Seed 44"]
    picked = await asyncio.to_thread(
        pick, studio.shared, tab, None, gr.SelectData(None, {"index": 2, "value": None}), req)
    assert tab.advanced is not None and picked[tab.advanced.seed] == 43
    assert "Picture 3 of 4" in picked[tab.panel.info]


def test_batch_seeds_are_consecutive_and_stay_in_range() -> None:
    request_ = GenerateRequest("x", 256, 256, seed=limits.MAX_SEED)
    seeds = [r.seed for r in batch_of(request_, 3)]
    assert seeds == [limits.MAX_SEED - 2, limits.MAX_SEED - 1, limits.MAX_SEED]
    randoms = [r.seed for r in batch_of(GenerateRequest("x", 256, 256), 4)]
    assert randoms[0] is not None and randoms == list(range(randoms[0], randoms[0] + 4))
    assert batch_of(request_, 1) == [request_]


async def test_a_result_the_library_could_not_keep_still_shows(
    studio: StudioPage, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def full_disk(item: object) -> object:
        raise LibrarySaveError("The result was not saved to the library: the disk is full.")

    monkeypatch.setattr(studio.shared.ctx.library, "save", full_disk)
    tab, req = studio.specs["generate"], request()
    await submit(studio.shared, tab, values(tab, prompt="kept?", width=256, height=256,
                                             steps=1), req)
    shown = await follow(studio, req)
    landed = await show_landed(studio.shared, tab, shown[tab.panel.landed], None, req)
    assert isinstance(landed[tab.panel.result], Image.Image)
    assert "the disk is full" in landed[tab.controls.message]
    assert shown[studio.follower.history_token] == "0"


async def test_stop_says_what_happened(studio: StudioPage, fake_comfy: FakeComfy) -> None:
    tab, req = studio.specs["generate"], request()
    assert "Nothing to stop" in stop(studio.shared, tab, None, req)
    fake_comfy.set_delays(step=0.05)
    await submit(studio.shared, tab, values(tab, prompt="slow", width=256, height=256,
                                             steps=30), req)
    said = stop(studio.shared, tab, None, req)
    assert "Stopped" in said
    shown = await follow(studio, req)
    assert "Stopped." in shown[tab.panel.status]


async def test_page_state_is_refused_to_another_login(studio: StudioPage) -> None:
    tab = studio.specs["generate"]
    ann = request("shared-hash", "ann")
    await submit(studio.shared, tab, values(tab, prompt="ann's", width=256, height=256,
                                             steps=1, batch=2), ann)
    shown = await follow(studio, ann)
    await show_landed(studio.shared, tab, shown[tab.panel.landed], None, ann)
    bob = request("shared-hash", "bob")
    with pytest.raises(SessionRefused):
        studio.shared.pages.enter(visitor_for(studio.shared.ctx.settings.library, bob, None))
    refused = await asyncio.to_thread(
        pick, studio.shared, tab, None, gr.SelectData(None, {"index": 0, "value": None}), bob)
    assert set(refused) == {tab.controls.message}
    assert "another login" in refused[tab.controls.message]
    answer = await submit(studio.shared, tab, values(tab, prompt="bob's"), bob)
    assert "another login" in answer[tab.controls.message]


@pytest.mark.parametrize("mode", ["shared", "off"])
async def test_a_closed_page_stops_its_jobs_only_when_nobody_could_see_them(
    fake_comfy: FakeComfy, tmp_path: Path, mode: str
) -> None:
    settings = Settings(comfy_url=fake_comfy.url, job_timeout_s=30.0,
                        library=LibraryConfig(data_dir=tmp_path / "data", mode=mode))  # type: ignore[arg-type]
    studio = await _open(settings)
    try:
        fake_comfy.set_delays(step=0.05)
        tab, req = studio.specs["generate"], request("closing")
        await submit(studio.shared, tab, values(tab, prompt="left behind", width=256,
                                                 height=256, steps=20), req)
        [job] = studio.shared.ctx.desk.jobs("session:closing")
        stopped = page_gone(studio.shared, "closing", None)
        await job.outcome()
        if mode == "off":
            assert stopped == 1 and job.state is JobState.STOPPED
        else:
            assert stopped == 0 and job.state is JobState.FINISHED
    finally:
        await _close(studio.shared.ctx)


async def test_a_history_item_restores_its_settings_and_the_inputs_as_sent(
    studio: StudioPage, tmp_path: Path
) -> None:
    edit, inpaint, req = studio.specs["edit"], studio.specs["inpaint"], request()
    sent = png()
    upload = tmp_path / "in.png"
    upload.write_bytes(sent)
    await submit(studio.shared, edit, values(edit, image=str(upload), prompt="make it night",
                                             steps=2, randomize=False, seed=77), req)
    layer = Image.new("RGBA", (320, 240), (0, 0, 0, 0))
    layer.paste((255, 0, 0, 150), (100, 80, 180, 160))
    painted = {"background": Image.open(io.BytesIO(sent)).convert("RGBA"), "layers": [layer],
               "composite": None}
    await submit(studio.shared, inpaint, values(inpaint, image=painted, prompt="a vase",
                                                steps=2), req)
    await follow(studio, req)
    listed = await studio.shared.ctx.library.page("shared", ItemQuery(limit=2))
    by_mode = {item.mode: item for item in listed.items}

    out = item_updates(edit, by_mode["edit"])
    assert out[edit.fields["prompt"]] == "make it night" and out[edit.fields["seed"]] == 77
    assert read(out[edit.sources[0]]) == sent                       # the picture as it was sent
    assert edit.fields["randomize"] not in out                      # "Random seed" left alone
    assert "Seed 77" in out[edit.controls.message]
    restored = item_updates(inpaint, by_mode["inpaint"])[inpaint.sources[0]]
    assert read(restored["background"])
    [mask_layer] = restored["layers"]
    assert (np.asarray(mask_layer)[..., 3] > 0).sum() == 80 * 80      # the painted mask, back

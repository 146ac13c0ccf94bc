"""`--preview-method`: with `none` the fake sends no sampler previews and everything else as
before (the real server's default); `auto` / `latent2rgb` send one frame per step."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fake.helpers import Socket, png_bytes, submit, summarize, upload
from tests.fake_comfy import FakeComfy
from tests.fake_comfy.__main__ import fake_from_args, parse_args

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
STEPS = 4


def generate_graph(seed: int = 7) -> dict[str, Any]:
    """workflows/generate.json, small and quick."""
    graph: dict[str, Any] = json.loads((WORKFLOWS / "generate.json").read_text())
    graph["6"]["inputs"].update(width=64, height=48)
    graph["7"]["inputs"].update(seed=seed, steps=STEPS)
    return graph


@pytest.fixture
def quiet_fake() -> Iterator[FakeComfy]:
    fake = FakeComfy(preview_method="none").start()
    try:
        yield fake
    finally:
        fake.close()


async def run(fake: FakeComfy, graph: dict[str, Any], meta: bool = True) -> list[str | bytes]:
    async with Socket(fake.url, "me", preview_metadata=meta) as ws, \
            httpx.AsyncClient(base_url=fake.url, timeout=10) as http:
        body = await submit(http, graph, "me")
        return await ws.until_done(body["prompt_id"])


@pytest.mark.parametrize("meta", [True, False], ids=["metadata_client", "plain_client"])
async def test_none_sends_no_previews_and_everything_else_the_same(
        fake_comfy: FakeComfy, quiet_fake: FakeComfy, meta: bool) -> None:
    with_previews = await run(fake_comfy, generate_graph(), meta)
    without = await run(quiet_fake, generate_graph(), meta)

    assert fake_comfy.config.preview_method == "auto"          # the fake's default
    assert sum(isinstance(f, bytes) for f in with_previews) == STEPS
    assert not any(isinstance(f, bytes) for f in without)
    assert [summarize(f) for f in without] == \
        [summarize(f) for f in with_previews if not isinstance(f, bytes)]
    progress = [s for s in map(summarize, without) if s.startswith("progress ")]
    assert progress == [f"progress 7 {k}/{STEPS}" for k in range(1, STEPS + 1)]


async def test_the_method_can_be_switched_over_http_and_shows_in_argv(
        fake_comfy: FakeComfy, client: httpx.AsyncClient) -> None:
    argv = (await client.get("/system_stats")).json()["system"]["argv"]
    assert argv[-2:] == ["--preview-method", "auto"]

    response = await client.post("/__fake__/previews", json={"method": "none"})
    assert response.json() == {"preview_method": "none"}
    assert (await client.post("/__fake__/previews", json={"method": "taesd"})).status_code == 400
    assert fake_comfy.state()["preview_method"] == "none"
    argv = (await client.get("/system_stats")).json()["system"]["argv"]
    assert "--preview-method" not in argv                      # none is the real default
    assert not any(isinstance(f, bytes) for f in await run(fake_comfy, generate_graph()))

    fake_comfy.set_preview_method("latent2rgb")
    frames = await run(fake_comfy, generate_graph(seed=8))
    assert sum(isinstance(f, bytes) for f in frames) == STEPS


async def test_save_image_websocket_still_sends_its_image(quiet_fake: FakeComfy) -> None:
    """Its frame is the node's output, not a sampler preview (ComfyUI sends it regardless)."""
    async with httpx.AsyncClient(base_url=quiet_fake.url, timeout=10) as http:
        await upload(http, "cap_src.png", png_bytes((40, 30)))
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "cap_src.png"}},
        "2": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["1", 0]}},
    }
    frames = await run(quiet_fake, graph, meta=False)
    assert [f[:8] for f in frames if isinstance(f, bytes)] == [b"\0\0\0\1\0\0\0\2"]


def test_command_line_and_constructor_take_the_method() -> None:
    for argv, method in (([], "auto"), (["--preview-method", "none"], "none")):
        fake = fake_from_args(parse_args(argv))
        assert fake.config.preview_method == method
        fake.close()
    with pytest.raises(SystemExit):
        parse_args(["--preview-method", "taesd"])
    with pytest.raises(ValueError, match="preview method"):
        FakeComfy(preview_method="fast")

"""The fake's sampler messages against a REAL KSampler run (fixtures/comfy/previews/): the same
message sequence per step for each `--preview-method`, for clients with and without
`supports_preview_metadata`, and preview frames shaped like the recorded ones.

`none` was not recorded (ComfyUI's default, read from its code): its expected sequence is the
recorded `auto` run without the binary frames, everything else identical.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.fake.helpers import Socket, summarize
from tests.fake_comfy import FakeComfy

TRACE = Path(__file__).resolve().parents[1] / "fixtures" / "comfy" / "previews" / \
    "trace_ksampler_previews.jsonl"
# The recorded graph (previews/README.md): SD1.5 checkpoint, 256x256, 6 steps.
GRAPH: dict[str, Any] = {
    "3": {"class_type": "KSampler", "inputs": {
        "seed": 1, "steps": 6, "cfg": 2.0, "sampler_name": "euler", "scheduler": "normal",
        "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
        "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "random_sd15.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 256, "height": 256, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a ripe banana", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "random_sd15_trace",
                                                "images": ["8", 0]}},
}


def recorded_runs() -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {}
    for line in TRACE.read_text().splitlines():
        entry = json.loads(line)
        runs.setdefault(entry["run"], []).append(entry["msg"])
    return runs


RUNS = recorded_runs()


def recorded_summary(run: str, *, previews: bool = True) -> list[str]:
    out = []
    for msg in RUNS[run]:
        if msg.get("binary"):
            if previews:
                out.append(f"binary {msg['type']}")
        else:
            out.append(summarize(msg))
    return out


@pytest.fixture(params=["auto", "latent2rgb", "none"])
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeComfy]:
    fake = FakeComfy(preview_method=request.param).start()
    fake.set_models("checkpoints", ["random_sd15.safetensors"])
    try:
        yield fake
    finally:
        fake.close()


async def run_recorded_graph(fake: FakeComfy, client_id: str, meta: bool) -> list[str | bytes]:
    async with Socket(fake.url, client_id, preview_metadata=meta) as ws, \
            httpx.AsyncClient(base_url=fake.url, timeout=10) as http:
        response = await http.post("/prompt", json={"prompt": GRAPH, "client_id": client_id})
        await ws.until_done(response.json()["prompt_id"])
        return ws.frames


@pytest.mark.parametrize("meta", [True, False], ids=["metadata_client", "plain_client"])
async def test_a_fresh_run_sends_what_the_real_server_sent(fake: FakeComfy, meta: bool) -> None:
    method = fake.config.preview_method
    run = f"{'auto' if method == 'none' else method}_{'meta' if meta else 'nometa'}_steps6"
    frames = await run_recorded_graph(fake, "rec1" if meta else "rec2", meta)

    assert [summarize(f) for f in frames] == recorded_summary(run, previews=method != "none")


@pytest.mark.parametrize("meta", [True, False], ids=["metadata_client", "plain_client"])
async def test_each_step_is_progress_state_preview_progress(fake: FakeComfy, meta: bool) -> None:
    """Per step k: `progress_state` (3 at k/6), then the frame before `progress` for metadata
    clients and after it for plain ones; with `none`, no frame."""
    method = fake.config.preview_method
    lines = [summarize(f) for f in await run_recorded_graph(fake, "steps", meta)]
    frame = [] if method == "none" else ["binary 4" if meta else "binary 1"]
    expected: list[str] = []
    for k in range(1, 7):
        progress = [f"progress 3 {k}/6"]
        expected += ["state", *(frame + progress if meta else progress + frame)]
    first = next(i for i, line in enumerate(lines) if line.endswith("3:running:1/6"))
    got = lines[first:first + len(expected)]
    states = [line for line in got if line.startswith("progress_state")]
    assert ["state" if line in states else line for line in got] == expected
    assert [line.rsplit(" ", 1)[1] for line in states] == [f"3:running:{k}/6" for k in range(1, 7)]


async def test_preview_frames_are_shaped_like_the_recorded_ones(fake: FakeComfy) -> None:
    if fake.config.preview_method == "none":
        pytest.skip("no frames with --preview-method none")
    recorded = [m for m in RUNS["auto_meta_steps6"] if m.get("binary")]
    frames = [f for f in await run_recorded_graph(fake, "shape", True) if isinstance(f, bytes)]
    assert len(frames) == len(recorded) == 6
    for frame, want in zip(frames, recorded, strict=True):
        kind, length = struct.unpack(">II", frame[:8])
        meta = json.loads(frame[8:8 + length])
        assert kind == want["type"] == 4
        assert set(meta) == set(want["header"])
        assert {k: v for k, v in meta.items() if k != "prompt_id"} == \
            {k: v for k, v in want["header"].items() if k != "prompt_id"}
        with Image.open(io.BytesIO(frame[8 + length:])) as image:
            assert image.format == want["image_format"] == "JPEG"
            assert list(image.size) == want["image_size_px"] == [512, 512]
            assert image.mode == want["image_mode"]

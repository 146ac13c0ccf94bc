"""Plain httpx + websockets helpers for driving the fake, and the recorded traces to match."""

from __future__ import annotations

import asyncio
import io
import json
import struct
from pathlib import Path
from typing import Any

import httpx
from PIL import Image
from websockets.asyncio.client import ClientConnection, connect

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "comfy"

CAPTURE_GRAPH: dict[str, Any] = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "cap_src.png"}},
    "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "bilinear",
                                                 "width": 128, "height": 96, "crop": "disabled"}},
    "3": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
    "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "capture"}},
}


def trace(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def ws_sections(name: str = "trace_ws_success.jsonl") -> dict[str, list[dict[str, Any]]]:
    """Recorded frames of a .jsonl trace, grouped by section (the first key word)."""
    sections: dict[str, list[dict[str, Any]]] = {}
    current = "connect"
    for line in (FIXTURES / name).read_text().splitlines():
        entry = json.loads(line)
        if "section" in entry:
            current = entry["section"].split()[0]
            sections[current] = [entry]
        elif "frame" in entry:
            sections.setdefault(current, []).append(entry)
    return sections


def png_bytes(size: tuple[int, int] = (40, 30), color: Any = (200, 30, 10),
              mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, "PNG")
    return buffer.getvalue()


def summarize(frame: dict[str, Any] | str | bytes) -> str:
    """One comparable line per frame: type and the fields that matter for ordering."""
    if isinstance(frame, bytes):
        kind = struct.unpack(">I", frame[:4])[0]
        return f"binary {kind}"
    if isinstance(frame, str):
        frame = json.loads(frame)
    assert isinstance(frame, dict)
    if frame.get("frame") == "binary":
        return f"binary {frame['event_type_u32be']}"
    msg = frame.get("msg", frame)
    kind, data = msg["type"], msg["data"]
    if kind == "status":
        return f"status {data['status']['exec_info']['queue_remaining']}"
    if kind == "progress_state":
        return "progress_state " + " ".join(
            f"{n}:{e['state']}:{e['value']!r}/{e['max']!r}" for n, e in data["nodes"].items())
    if kind in ("executing", "executed"):
        return f"{kind} {data['node']}"
    if kind == "execution_cached":
        return f"execution_cached {','.join(data['nodes'])}"
    if kind == "progress":
        return f"progress {data['node']} {data['value']}/{data['max']}"
    if kind in ("execution_error", "execution_interrupted"):
        return f"{kind} {data['node_id']} {data['node_type']} {','.join(data['executed'])}"
    return kind


def recorded(section: list[dict[str, Any]]) -> list[str]:
    return [summarize(f) for f in section if "frame" in f]


class Socket:
    """A client websocket that keeps every frame it receives."""

    def __init__(self, url: str, client_id: str, *, preview_metadata: bool = False) -> None:
        self.url = f"{url.replace('http', 'ws', 1)}/ws?clientId={client_id}"
        self.client_id = client_id
        self.preview_metadata = preview_metadata
        self.frames: list[str | bytes] = []
        self.ws: ClientConnection | None = None

    async def __aenter__(self) -> Socket:
        self.ws = await connect(self.url, max_size=None)
        if self.preview_metadata:
            await self.ws.send(json.dumps({"type": "feature_flags",
                                           "data": {"supports_preview_metadata": True}}))
        self.frames.append(await asyncio.wait_for(self.ws.recv(), 5))       # the greeting
        if self.preview_metadata:
            self.frames.append(await asyncio.wait_for(self.ws.recv(), 5))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.ws is not None
        await self.ws.close()

    async def recv(self, within: float = 5.0) -> str | bytes:
        assert self.ws is not None
        frame = await asyncio.wait_for(self.ws.recv(), within)
        self.frames.append(frame)
        return frame

    async def until_done(self, prompt_id: str, within: float = 10.0) -> list[str | bytes]:
        """Frames up to and including `executing {node: null}` for this prompt."""
        start = len(self.frames)
        async with asyncio.timeout(within):
            while True:
                frame = await self.recv(within)
                if isinstance(frame, str):
                    msg = json.loads(frame)
                    if (msg["type"] == "executing" and msg["data"]["node"] is None
                            and msg["data"].get("prompt_id") == prompt_id):
                        return self.frames[start:]


def messages(frames: list[str | bytes]) -> list[dict[str, Any]]:
    return [json.loads(f) for f in frames if isinstance(f, str)]


async def upload(client: httpx.AsyncClient, name: str, data: bytes, **form: str) -> httpx.Response:
    return await client.post("/upload/image", files={"image": (name, data, "image/png")},
                             data=form)


async def submit(client: httpx.AsyncClient, prompt: dict[str, Any], client_id: str | None = None,
                 **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"prompt": prompt, **extra}
    if client_id is not None:
        body["client_id"] = client_id
    response = await client.post("/prompt", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def slow_graph(tag: int, prefix: str = "slow") -> dict[str, Any]:
    """The capture graph with a distinct width (so nothing is cached) and a PreviewImage."""
    graph = json.loads(json.dumps(CAPTURE_GRAPH))
    graph["2"]["inputs"]["width"] = 100 + tag
    graph["4"] = {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}}
    return graph


FP8_UNET = "qwen_image_2512_fp8_e4m3fn.safetensors"
FP8_CLIP = "qwen_2.5_vl_7b_fp8_scaled.safetensors"
GGUF_UNET = "qwen-image-2512-Q4_K_M.gguf"
GGUF_EDIT_UNET = "qwen-image-edit-2511-Q4_K_M.gguf"
GGUF_CLIP = "Qwen2.5-VL-7B-Instruct-Q4_K_M.gguf"


def qwen_generate(unet: str = FP8_UNET, clip: str = FP8_CLIP, *, seed: int = 1,
                  steps: int = 2) -> dict[str, Any]:
    """A small text-to-image graph; `.gguf` names get the ComfyUI-GGUF loaders."""
    unet_node = ({"class_type": "UnetLoaderGGUF", "inputs": {"unet_name": unet}}
                 if unet.endswith(".gguf") else
                 {"class_type": "UNETLoader", "inputs": {"unet_name": unet,
                                                         "weight_dtype": "default"}})
    clip_class = "CLIPLoaderGGUF" if clip.endswith(".gguf") else "CLIPLoader"
    return {
        "1": unet_node,
        "2": {"class_type": clip_class, "inputs": {"clip_name": clip, "type": "qwen_image"}},
        "3": {"class_type": "VAELoader", "inputs": {"vae_name": "qwen_image_vae.safetensors"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "a banana", "clip": ["2", 0]}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["2", 0]}},
        "6": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64,
                                                              "batch_size": 1}},
        "7": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "seed": seed, "steps": steps, "cfg": 1.0, "sampler_name": "euler",
            "scheduler": "simple", "positive": ["4", 0], "negative": ["5", 0],
            "latent_image": ["6", 0], "denoise": 1.0}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["3", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "q"}},
    }

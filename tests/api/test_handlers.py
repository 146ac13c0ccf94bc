"""The HTTP routes are module-level handlers: each can be called on its own, with a request
whose app carries a StudioContext (no server, no Gradio)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.requests import Request

from backend import http_api
from backend.api.auth import api_who
from backend.context import StudioContext, build_context
from tests.api.conftest import API_KEY, studio_settings
from tests.fake_comfy import FakeComfy


@pytest.fixture
async def ctx(fake_comfy: FakeComfy) -> AsyncIterator[StudioContext]:
    context = build_context(studio_settings(fake_comfy))
    await context.start()     # opens the library the desk saves into
    try:
        yield context
    finally:
        await context.aclose()


def request(ctx: StudioContext, path: str, *, method: str = "GET", body: bytes = b"",
            key: str | None = API_KEY) -> Request:
    app = FastAPI()
    app.state.studio_context = ctx
    headers = [(b"content-type", b"application/json")]
    if key:
        headers.append((b"authorization", f"Bearer {key}".encode()))
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:   # the client stays: the job's disconnect watcher waits here
            await asyncio.Event().wait()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "app": app, "method": method, "path": path, "headers": headers,
             "query_string": b""}
    return Request(scope, receive)


def body_of(response: Any) -> Any:
    return json.loads(response.body)


async def test_models_lists_every_modes_ids(ctx: StudioContext) -> None:
    response = await http_api.models(request(ctx, "/v1/models"))
    ids = [m["id"] for m in body_of(response)["data"]]
    assert ids[0] == "qwen-image" and "qwen-image-turbo" in ids
    assert "qwen-image-region-edit" in ids and "qwen-image-inpaint-conditioning" in ids


async def test_a_missing_key_is_401_before_anything_runs(ctx: StudioContext) -> None:
    response = await http_api.models(request(ctx, "/v1/models", key=None))
    assert response.status_code == 401
    assert body_of(response)["error"]["code"] == "missing_api_key"


async def test_generations_refuses_a_bad_body_by_itself(ctx: StudioContext) -> None:
    bad = request(ctx, "/v1/images/generations", method="POST", body=b'{"prompt": ""}')
    response = await http_api.generations(bad)
    assert response.status_code == 400
    assert body_of(response)["error"]["param"] == "prompt"


async def test_generations_runs_a_job(ctx: StudioContext) -> None:
    body = json.dumps({"prompt": "a pear", "size": "256x256", "steps": 2, "seed": 5}).encode()
    response = await http_api.generations(
        request(ctx, "/v1/images/generations", method="POST", body=body)
    )
    assert response.status_code == 200, response.body
    item = body_of(response)["data"][0]
    assert item["seed"] == 5
    assert ctx.metrics.finished.labels("generate", "api")._value.get() == 1
    # Through the desk: saved in the library for the key's owner, its id in the answer.
    saved = await ctx.library.get(api_who(API_KEY, "api").owner, item["id"])
    assert saved is not None and saved.surface == "api" and saved.prompt == "a pear"


async def test_healthz_and_metrics(ctx: StudioContext) -> None:
    health = await http_api.healthz(request(ctx, "/healthz", key=None))
    assert health.status_code == 200 and body_of(health)["modes"]["edit"]["ready"] is True
    metrics = await http_api.metrics(request(ctx, "/metrics", key=None))
    assert b"studio_comfyui_up 1.0" in metrics.body

"""Fixtures for the fake's own tests: an HTTP client on the fake, cap_src.png uploaded."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.fake.helpers import png_bytes, upload
from tests.fake_comfy import FakeComfy


@pytest.fixture
async def client(fake_comfy: FakeComfy) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fake_comfy.url, timeout=10) as http:
        yield http


@pytest.fixture
async def uploaded(client: httpx.AsyncClient) -> str:
    """cap_src.png in input/, as in every recorded run."""
    response = await upload(client, "cap_src.png", png_bytes((40, 30)))
    assert response.json() == {"name": "cap_src.png", "subfolder": "", "type": "input"}
    return "cap_src.png"

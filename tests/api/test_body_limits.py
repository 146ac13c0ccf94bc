"""Bodies are limited while they are read (issue 9 item 3): a chunked body is cut off at the
route's limit and answered 413 without reading the rest, a declared Content-Length over the
limit is refused before a byte is read, nothing large reaches memory or the temp folder, and
normal requests still work. Before: a 1 GB chunked edit cost +1,024 MB RSS and a 1.07 GB temp
file before its 413; 300 MB of chunked JSON cost +597 MB.

The studio runs in this process (uvicorn in a thread, tests/api/conftest.py) with a 2 MB
upload limit, so its RSS is this process's; the client speaks raw HTTP/1.1 so it can read the
413 while it is still sending, as a browser or curl does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from backend.api.body_limits import (
    LINGER_BYTES,
    MIB,
    BodyLimitMiddleware,
    RouteLimit,
    route_limits,
)
from backend.limits import describe_bytes
from backend.settings import Settings
from tests.api.conftest import API_KEY, RunningStudio, auth, picture, png_bytes

GB = 1024 * MIB
CHUNK = b"\0" * (256 * 1024)          # one buffer, sent again and again: nothing allocated
RSS_GROWTH_LIMIT_MB = 50
BOUNDARY = "banana-boundary"


# --- a raw HTTP/1.1 client that reads the answer while it sends --------------------------


async def lazily(total: int, prefix: bytes = b"") -> AsyncIterator[bytes]:
    if prefix:
        yield prefix
    sent = len(prefix)
    while sent < total:
        piece = CHUNK if total - sent >= len(CHUNK) else CHUNK[: total - sent]
        sent += len(piece)
        yield piece


async def post_raw(
    url: str, path: str, headers: dict[str, str], body: AsyncIterator[bytes] | None,
) -> tuple[int, dict[str, str], Any, int]:
    """POST with a chunked body (or headers only when `body` is None); returns status,
    headers, the JSON answer and how many body bytes had been sent when it came."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    head = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None:
        head.append("Transfer-Encoding: chunked")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    sent = 0

    async def pump() -> None:
        nonlocal sent
        assert body is not None
        async for chunk in body:
            writer.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            await writer.drain()
            sent += len(chunk)
            await asyncio.sleep(0)     # drain() does not yield while the socket takes it all:
            #                            let the reader see an early answer, as curl would
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    pumping = asyncio.create_task(pump()) if body is not None else None
    try:
        async with asyncio.timeout(60):
            status_line = await reader.readline()
            answer_headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                answer_headers[name.strip().lower()] = value.strip()
            data = await reader.readexactly(int(answer_headers.get("content-length", "0")))
        seen_at = sent
    finally:
        if pumping is not None:
            pumping.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await pumping
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return int(status_line.split()[1]), answer_headers, json.loads(data or b"null"), seen_at


def multipart_head(field: str = "image", filename: str = "huge.png") -> bytes:
    return (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nbrighter\r\n"
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; "
        f"filename=\"{filename}\"\r\nContent-Type: image/png\r\n\r\n"
    ).encode()


# --- memory and the temp folder -----------------------------------------------------------


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} in /proc/self/status")


class Memory:
    """This process's resident set: the peak since start() when the kernel lets us reset
    it (clear_refs 5), else the growth of the current RSS."""

    def start(self) -> None:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.field = "VmHWM"
        except OSError:
            self.field = "VmRSS"
        self.before = _status_mb("VmRSS")

    def growth_mb(self) -> float:
        return _status_mb(self.field) - self.before


@pytest.fixture
def temp_dir(tmp_path: Path) -> Iterator[Path]:
    """Route the server's temp files (Starlette's spooled uploads) into an empty folder."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    saved = tempfile.tempdir
    tempfile.tempdir = str(folder)
    try:
        yield folder
    finally:
        tempfile.tempdir = saved


def _is_413(status: int, body: Any, openai: bool = True) -> str:
    assert status == 413, (status, body)
    if openai:
        error = body["error"]
        assert (error["type"], error["code"]) == ("invalid_request_error", "request_too_large")
        return str(error["message"])
    return str(body["detail"])


# --- the studio ---------------------------------------------------------------------------


async def test_a_1gb_chunked_edit_is_refused_early(studio: RunningStudio, temp_dir: Path) -> None:
    limit = route_limits(studio.settings)[0]
    assert limit.prefix == "/v1/images/edits"
    memory = Memory()
    memory.start()
    status, headers, body, sent = await post_raw(
        studio.url, "/v1/images/edits",
        {**auth(), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        lazily(GB, multipart_head()),
    )
    message = _is_413(status, body)
    assert describe_bytes(limit.max_bytes) in message
    assert headers.get("connection") == "close"
    # stopped at the limit: what was sent before the answer is the limit plus the sockets'
    # buffers, not the gigabyte
    assert sent < limit.max_bytes + 64 * MIB, sent
    print(f"1 GB chunked edit: 413 after {sent / MIB:.1f} MB sent, "
          f"{memory.field} growth {memory.growth_mb():.1f} MB")
    assert memory.growth_mb() < RSS_GROWTH_LIMIT_MB, memory.growth_mb()
    assert os.listdir(temp_dir) == []
    assert studio.fake.counters["prompts_posted"] == 0


async def test_300mb_of_chunked_json_is_refused_early(studio: RunningStudio, temp_dir: Path) -> None:
    memory = Memory()
    memory.start()
    status, _, body, sent = await post_raw(
        studio.url, "/v1/images/generations", {**auth(), "Content-Type": "application/json"},
        lazily(300 * MIB, b'{"prompt": "'),
    )
    assert "1 MB" in _is_413(status, body)
    assert sent < 1 * MIB + 64 * MIB, sent
    print(f"300 MB chunked JSON: 413 after {sent / MIB:.1f} MB sent, "
          f"{memory.field} growth {memory.growth_mb():.1f} MB")
    assert memory.growth_mb() < RSS_GROWTH_LIMIT_MB, memory.growth_mb()
    assert os.listdir(temp_dir) == []


@pytest.mark.parametrize("path", ["/v1/images/generations", "/v1/images/edits"])
async def test_a_declared_length_over_the_limit_is_refused_before_reading(
    studio: RunningStudio, path: str
) -> None:
    # Only the headers go out: the 413 must come without the body ever being sent.
    status, headers, body, _ = await post_raw(
        studio.url, path,
        {**auth(), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
         "Content-Length": str(50 * 1000 * 1000)},
        None,
    )
    _is_413(status, body)
    assert headers.get("connection") == "close"


async def test_gradio_and_other_routes_are_limited_too(studio: RunningStudio) -> None:
    # (Gradio's upload route refuses a file over max_file_size early by itself.)
    upload = studio.settings.max_upload_bytes
    status, _, body, sent = await post_raw(
        studio.url, "/gradio_api/queue/join", {"Content-Type": "application/json"},
        lazily(100 * upload, b'{"data": ["'),
    )
    assert describe_bytes(upload + MIB) in _is_413(status, body, openai=False)
    assert sent < 100 * upload
    status, _, body, _ = await post_raw(
        studio.url, "/login", {"Content-Type": "application/x-www-form-urlencoded"},
        lazily(1 * MIB, b"username="),
    )
    _is_413(status, body, openai=False)


async def test_normal_requests_still_work_chunked_or_not(studio: RunningStudio) -> None:
    image = png_bytes(picture())

    async def chunked_form() -> AsyncIterator[bytes]:
        yield multipart_head()
        for start in range(0, len(image), 4096):
            yield image[start:start + 4096]
        yield f"\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"steps\"\r\n\r\n2\r\n" \
              f"--{BOUNDARY}--\r\n".encode()

    async with httpx.AsyncClient(base_url=studio.url, timeout=60) as client:
        chunked = await client.post(
            "/v1/images/edits", content=chunked_form(),
            headers={**auth(), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        )
        assert chunked.status_code == 200, chunked.text
        assert "transfer-encoding" not in chunked.request.headers or \
            chunked.request.headers["transfer-encoding"] == "chunked"
        plain = await client.post(
            "/v1/images/generations", headers={"Authorization": f"Bearer {API_KEY}"},
            json={"prompt": "a lighthouse", "size": "256x256", "steps": 2},
        )
        assert plain.status_code == 200, plain.text
        assert (await client.get("/healthz")).status_code == 200


async def test_one_file_over_the_upload_limit_names_the_limit_as_the_docs_do(
    studio: RunningStudio,
) -> None:
    # Under the route's limit (4 files' worth) but over the per-file one: the form reader's
    # 413, in the same unit as README ("2 MB" for 2 × 1024², not "2.1 MB").
    big = b"\0" * (studio.settings.max_upload_bytes + 300 * 1024)
    async with httpx.AsyncClient(base_url=studio.url, timeout=60) as client:
        response = await client.post(
            "/v1/images/edits", headers=auth(), data={"prompt": "x"},
            files={"image": ("in.png", big, "image/png")},
        )
    assert response.status_code == 413
    assert response.json()["error"]["message"] == (
        "The file 'in.png' is 2.3 MB; the limit is 2 MB.")


# --- the middleware and its table on their own --------------------------------------------


def test_the_table_follows_the_upload_setting() -> None:
    limits = {limit.prefix: limit for limit in route_limits(Settings())}   # 25 MB uploads
    assert limits["/v1/images/edits"].max_bytes == 4 * 25 * MIB + MIB
    assert limits["/v1/chat/completions"].max_bytes == 3 * math.ceil(25 * MIB * 4 / 3) + MIB
    assert limits["/v1/"].max_bytes == MIB
    assert limits["/gradio_api/upload"].max_bytes == 4 * 25 * MIB + MIB
    assert limits[""].max_bytes == 64 * 1024
    assert all(limits[p].openai for p in ("/v1/images/edits", "/v1/chat/completions", "/v1/"))
    assert not limits["/gradio_api/"].openai
    assert describe_bytes(25 * MIB) == "25 MB"
    assert describe_bytes(101 * MIB) == "101 MB"
    assert describe_bytes(int(2.5 * MIB)) == "2.5 MB"
    assert describe_bytes(64 * 1024) == "64 KB"


def _app_behind_the_limit(limit: int) -> tuple[Starlette, list[str], list[int]]:
    seen: list[str] = []
    got: list[int] = [0]

    async def swallow(request: Request) -> Response:
        # a handler that turns any read error into its own 400 (as the edits form reader does)
        try:
            async for chunk in request.stream():
                got[0] += len(chunk)
        except Exception as exc:  # noqa: BLE001 - the point of the test
            seen.append(type(exc).__name__)
            return JSONResponse({"error": "bad form"}, status_code=400)
        return JSONResponse({"length": got[0]})

    app = Starlette(routes=[Route("/v1/echo", swallow, methods=["POST"])])
    app.add_middleware(BodyLimitMiddleware, limits=[RouteLimit("/v1/", limit, openai=True)])
    return app, seen, got


async def test_the_apps_own_answer_to_a_cut_off_body_is_replaced_by_the_413() -> None:
    app, seen, got = _app_behind_the_limit(1000)
    pulled = 0

    async def body(chunks: int, size: int) -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(chunks):
            pulled += size
            yield b"x" * size

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://studio") as client:
        refused = await client.post("/v1/echo", content=body(1000, 100))
        assert refused.status_code == 413 and seen == ["BodyTooLarge"]
        assert refused.json()["error"]["message"].startswith("The request body is over 1000 bytes")
        assert refused.headers["connection"] == "close"
        assert got[0] <= 1000                     # the app never saw more than the limit

        # after the 413 the rest is only drained for a bounded linger, never read to the end
        got[0], pulled = 0, 0
        refused = await client.post("/v1/echo", content=body(100_000, 1024))   # 100 MB
        assert refused.status_code == 413 and got[0] <= 1000
        assert pulled <= 1000 + LINGER_BYTES + 2 * 1024, pulled

        got[0] = 0
        ok = await client.post("/v1/echo", content=b"y" * 1000)
        assert ok.json() == {"length": 1000}
        declared = await client.post("/v1/echo", content=b"z" * 1001)   # with Content-Length
        assert declared.status_code == 413 and seen == ["BodyTooLarge"] * 2  # app not called

"""The library's file route (backend/api/library_files.py): a page's URL serves its owner's
files and nothing else — not another owner's (anonymous per-browser ids or logins), not a
forged or swapped grant, not a path out of the folder, not the database — and with
STUDIO_AUTH only to the login the grant names."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI

from backend.api.library_files import FileGrants, LibraryFiles, file_url, router
from backend.library import Library, LibraryItem
from tests.library.conftest import new_item

ANN, BOB = "browser:ann-browser-id", "browser:bob-browser-id"


def app_for(library: Library, grants: FileGrants, login: str | None = None,
            login_required: bool = False) -> FastAPI:
    app = FastAPI()
    app.include_router(router)
    app.state.library_files = LibraryFiles(library, login_required, lambda _r: login, grants)
    return app


@pytest.fixture
def grants() -> FileGrants:
    return FileGrants()


@pytest.fixture
async def items(library: Library) -> tuple[LibraryItem, LibraryItem]:
    ann = await library.save(new_item(ANN, "ann's lighthouse", mask=True))
    bob = await library.save(new_item(BOB, "bob's windmill"))
    return ann, bob


@pytest.fixture
async def get(library: Library, grants: FileGrants
              ) -> AsyncIterator[Callable[..., httpx.Response]]:
    clients: list[httpx.AsyncClient] = []

    async def fetch(url: str, login: str | None = None,
                    login_required: bool = False) -> httpx.Response:
        app = app_for(library, grants, login, login_required)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                   base_url="http://studio")
        clients.append(client)
        return await client.get(url)

    yield fetch     # type: ignore[misc]
    for client in clients:
        await client.aclose()


async def test_an_owner_gets_its_files_and_nobody_else_does(
    library: Library, grants: FileGrants, items: tuple[LibraryItem, LibraryItem], get
) -> None:
    ann, bob = items
    for path in ann.files:                    # result, thumbnail, mask
        answer = await get(file_url(library, ANN, path, grants=grants))
        assert answer.status_code == 200, path
        assert answer.content == path.read_bytes()
        assert "private" in answer.headers["cache-control"]
    # Bob's grant on Ann's file, and Ann's grant on Bob's.
    assert (await get(file_url(library, BOB, ann.result, grants=grants))).status_code == 404
    assert (await get(file_url(library, ANN, bob.result, grants=grants))).status_code == 404
    download = await get(file_url(library, ANN, ann.result, download=True, grants=grants))
    assert download.headers["content-disposition"].startswith("attachment")


async def test_forged_grants_and_paths_out_of_the_folder_are_not_found(
    library: Library, grants: FileGrants, items: tuple[LibraryItem, LibraryItem], get
) -> None:
    ann, _ = items
    mine = file_url(library, ANN, ann.result, grants=grants)
    grant = mine.split("/")[3]
    bobs_grant = grants.grant(BOB)
    # Ann's owner with Bob's signature, another process's secret, garbage.
    swapped = grant.split(".")[0] + "." + bobs_grant.split(".")[1]
    foreign = FileGrants().grant(ANN)
    for bad in (swapped, foreign, "bm90LWEtZ3JhbnQ", "...", grant + "0"):
        assert (await get(mine.replace(grant, bad))).status_code == 404, bad
    # A guessed name in Ann's folder, the database, and escapes out of the folder.
    base = f"/library/file/{grant}"
    month, item_id = ann.result.parent.parent.name, ann.result.parent.name
    for path in (f"{month}/{item_id}/item.json", f"{month}/{item_id}/nothing.png",
                 "../../library.db", "%2E%2E/%2E%2E/library.db", f"{month}/../{item_id}",
                 f"{month}/{item_id}/..%2F..%2F..%2Flibrary.db"):
        answer = await get(f"{base}/{path}")
        assert answer.status_code == 404, (path, answer.status_code)
        assert b"SQLite" not in answer.content


async def test_with_logins_a_grant_serves_only_the_login_it_names(
    library: Library, grants: FileGrants, get
) -> None:
    ann = await library.save(new_item("user:ann", "ann's lighthouse"))
    url = file_url(library, "user:ann", ann.result, grants=grants)
    assert (await get(url, login="ann", login_required=True)).status_code == 200
    # Bob logged in with a URL copied out of Ann's page; nobody logged in.
    assert (await get(url, login="bob", login_required=True)).status_code == 404
    assert (await get(url, login=None, login_required=True)).status_code == 404


async def test_a_closed_library_answers_not_found(
    make_library: Callable[..., Library], grants: FileGrants
) -> None:
    library = make_library()
    await library.open()
    item = await library.save(new_item(ANN))
    url = file_url(library, ANN, item.result, grants=grants)
    await library.close()
    transport = httpx.ASGITransport(app=app_for(library, grants))
    async with httpx.AsyncClient(transport=transport, base_url="http://studio") as client:
        assert (await client.get(url)).status_code == 404


def test_grants_round_trip_any_owner() -> None:
    grants = FileGrants()
    for owner in ("shared", "user:ann", "browser:Ab-_9xyzQRST", "session:ü/ß?=&"):
        assert grants.owner_of(grants.grant(owner)) == owner
    assert grants.owner_of("") is None
    assert FileGrants().owner_of(grants.grant("shared")) is None

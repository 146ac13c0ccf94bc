"""`GET /library/file/{grant}/{month}/{item}/{name}`: a library file (result PNG, thumbnail,
input, mask) for the page that may see it, and nobody else.

A page never learns a path on the server. It gets URLs holding a **grant**: the owner it
lists for (`user:ann`, `browser:<id>`, `shared`…) signed with this process's secret, so an
owner cannot be made up or swapped in a URL. The route then asks `Library.owns_file(owner,
path)`: a file of another owner, a path that is not a library file, or one that escapes the
folder is a 404, the same answer as a file that does not exist (nothing tells them apart).
With STUDIO_AUTH the grant must also be the logged-in user's own (the login cookie is read by
a function app.py hands in: backend/ never imports Gradio), so a URL copied out of Ann's page
shows Bob nothing. Anonymous per-browser pages get their browser id's grant only from their
own page (the id lives in the browser's storage).

`?download=1` sends the file as an attachment (the Library's Download button).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from backend.library import Library, LibraryError
from backend.library.files import ITEMS_DIR

ROUTE_PREFIX = "/library/file"
SIGNATURE_CHARS = 32
router = APIRouter()

LoginOf = Callable[[Request], str | None]


@dataclass(frozen=True)
class FileGrants:
    """Signs and reads the owner part of a library file URL (a per-process secret: URLs of a
    previous run stop working, and pages re-read theirs on load)."""

    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def grant(self, owner: str) -> str:
        encoded = base64.urlsafe_b64encode(owner.encode()).decode().rstrip("=")
        return f"{encoded}.{self._sign(owner)}"

    def owner_of(self, grant: str) -> str | None:
        encoded, _, signature = grant.partition(".")
        try:
            owner = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        if not owner or not hmac.compare_digest(signature, self._sign(owner)):
            return None
        return owner

    def _sign(self, owner: str) -> str:
        return hmac.new(self.secret, owner.encode(), hashlib.sha256).hexdigest()[:SIGNATURE_CHARS]


GRANTS = FileGrants()   # one per process: the UI makes URLs with it, the route checks them


def file_url(library: Library, owner: str, path: Path, *, download: bool = False,
             grants: FileGrants = GRANTS) -> str:
    """The URL a page of `owner` uses for one of its library files (`path` from a
    LibraryItem)."""
    relative = path.relative_to(library.data_dir / ITEMS_DIR)
    parts = "/".join(quote(part, safe="") for part in relative.parts)
    return f"{ROUTE_PREFIX}/{grants.grant(owner)}/{parts}" + ("?download=1" if download else "")


@dataclass(frozen=True)
class LibraryFiles:
    """What the route needs (app.py puts it on `app.state.library_files`)."""

    library: Library
    login_required: bool                 # STUDIO_AUTH is on
    login_of: LoginOf                    # the logged-in user of a request, else None
    grants: FileGrants = GRANTS


def _not_found() -> Response:
    return Response("Not found.", status_code=404, media_type="text/plain")


@router.get(ROUTE_PREFIX + "/{grant}/{month}/{item_id}/{name}")
def library_file(grant: str, month: str, item_id: str, name: str, request: Request,
                 download: bool = False) -> Response:
    """Sync on purpose: `owns_file` is one indexed query, run in FastAPI's thread pool."""
    files: LibraryFiles = request.app.state.library_files
    owner = files.grants.owner_of(grant)
    if owner is None:
        return _not_found()
    if files.login_required:
        user = files.login_of(request)
        if not user or owner != f"user:{user}":
            return _not_found()
    path = files.library.data_dir / ITEMS_DIR / month / item_id / name
    try:
        item = files.library.owns_file(owner, path)
    except (LibraryError, RuntimeError, OSError):     # not open (yet / any more)
        return _not_found()
    if item is None:
        return _not_found()
    return FileResponse(
        path, filename=name if download else None,
        content_disposition_type="attachment" if download else "inline",
        # Private: a shared cache must never hand one person's picture to another.
        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )

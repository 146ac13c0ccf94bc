"""Bearer-key check for /v1/* (Gradio's login does not cover routes mounted beside it), and
whom an API request's jobs are for."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from backend.api.errors import ApiError
from backend.desk import Who
from backend.events import Surface

API_PERSON = "api"


def check_bearer(request: Request, api_key: str | None) -> None:
    """No key configured → open. Otherwise `Authorization: Bearer <key>` or ApiError(401).
    Any whitespace separates the scheme from the key (RFC 9110 allows a tab)."""
    if not api_key:
        return
    scheme, token = _split(request.headers.get("authorization", ""))
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401,
            "Missing API key: send 'Authorization: Bearer <STUDIO_API_KEY>'.",
            code="missing_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(token.encode(), api_key.encode()):
        raise ApiError(
            401,
            "Incorrect API key provided.",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )


def api_who(api_key: str | None, surface: Surface) -> Who:
    """The person (fairness, queue caps) and owner (library) of an API request: the key the
    request passed `check_bearer` with, as `api:<8 hex of its sha256>` (never the key itself),
    or `api` when the studio has no key (every caller is then one person)."""
    if not api_key:
        return Who(API_PERSON, API_PERSON, surface)
    person = f"{API_PERSON}:{hashlib.sha256(api_key.encode()).hexdigest()[:8]}"
    return Who(person, person, surface)


def _split(header: str) -> tuple[str, str]:
    parts = header.strip().split(None, 1)
    if len(parts) != 2:
        return (parts[0] if parts else ""), ""
    return parts[0], parts[1].strip()

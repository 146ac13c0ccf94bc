"""Bearer-key check for /v1/* (Gradio's login does not cover routes mounted beside it)."""

from __future__ import annotations

import hmac

from fastapi import Request

from backend.api.errors import ApiError


def check_bearer(request: Request, api_key: str | None) -> None:
    """No key configured → open. Otherwise `Authorization: Bearer <key>` or ApiError(401)."""
    if not api_key:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "Missing API key: send 'Authorization: Bearer <STUDIO_API_KEY>'.",
            code="missing_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(token.strip().encode(), api_key.encode()):
        raise ApiError(
            401,
            "Incorrect API key provided.",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )

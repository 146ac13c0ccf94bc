"""Errors in OpenAI's JSON shape, and the one table from a job's failure kind to a status.

`{"error": {"message", "type", "param", "code"}}`; never a stack trace. The `x-should-retry`
header tells the official SDKs (which retry every 5xx twice by default) not to resubmit a job
that will fail the same way or that already ran for minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi.responses import JSONResponse


@dataclass(frozen=True)
class Outcome:
    status: int
    code: str
    retry: bool


# Failed.kind → HTTP status. Documented in docs/api.md; keep the two in step.
FAILURE_STATUS: dict[str, Outcome] = {
    "invalid_input": Outcome(400, "invalid_input", False),
    "busy": Outcome(429, "queue_full", True),
    "unreachable": Outcome(503, "comfyui_unreachable", True),
    "rejected": Outcome(502, "comfyui_rejected", False),
    "missing_models": Outcome(424, "missing_models", False),
    "out_of_memory": Outcome(507, "out_of_memory", False),
    "execution": Outcome(502, "execution_failed", False),
    "interrupted": Outcome(503, "interrupted", False),
    "timeout": Outcome(504, "timeout", False),
    "lost": Outcome(503, "comfyui_restarted", True),
}


class ApiError(Exception):
    """Raised inside a route; turned into an OpenAI-shaped JSON response by `to_response`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry: bool | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.retry = retry
        self.headers = headers or {}

    @classmethod
    def from_failure(cls, kind: str, message: str, param: str | None = None) -> ApiError:
        outcome = FAILURE_STATUS.get(kind, Outcome(500, kind or "error", False))
        return cls(outcome.status, message, code=outcome.code, retry=outcome.retry, param=param)

    @classmethod
    def queue_full(cls, message: str, retry_after_s: int) -> ApiError:
        """The studio's line (or this caller's share of it) is full: 429, try again later."""
        outcome = FAILURE_STATUS["busy"]
        return cls(outcome.status, message, code=outcome.code, retry=outcome.retry,
                   headers={"Retry-After": str(max(1, retry_after_s))})

    def to_response(self) -> JSONResponse:
        return error_response(
            self.status, self.message, param=self.param, code=self.code,
            retry=self.retry, headers=self.headers,
        )


def error_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 429:
        return "requests"      # OpenAI's type for a request-rate refusal
    return "invalid_request_error" if status < 500 and status != 424 else "server_error"


def error_response(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    retry: bool | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"message": message, "type": error_type(status), "param": param, "code": code}}
    all_headers = dict(headers or {})
    if retry is not None:
        all_headers["x-should-retry"] = "true" if retry else "false"
    return JSONResponse(body, status_code=status, headers=all_headers)

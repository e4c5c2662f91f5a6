"""Writing Anthropic-shaped error responses and JSON bodies to a twisted.web request."""

from __future__ import annotations

from typing import Any

from twisted.web.server import Request

from ccproxy import jsonio
from ccproxy.errors import ApiError, error_payload

__all__ = ["write_error", "write_json"]



def write_json(request: Request, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
    """Send C{payload} as the whole JSON response and finish the request."""
    body = jsonio.dumps(payload)
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    for name, value in (headers or {}).items():
        request.setHeader(name.encode(), value.encode())
    request.setHeader(b"content-length", str(len(body)).encode())
    if request.method != b"HEAD":
        request.write(body)
    request.finish()


def write_error(request: Request, error: ApiError, request_id: str | None) -> None:
    """Send C{error} as an Anthropic error response and finish the request."""
    write_json(request, error.status, error_payload(error, request_id), dict(error.headers))

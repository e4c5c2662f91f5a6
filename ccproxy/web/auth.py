"""The client key check: C{x-api-key} or C{Authorization: Bearer}, in constant time."""

from __future__ import annotations

import hmac

from twisted.web.http_headers import Headers

from ccproxy.errors import ApiError

__all__ = ["client_authorized", "UNAUTHORIZED"]

UNAUTHORIZED = ApiError(401, "authentication_error", "invalid x-api-key or Authorization bearer token")


def client_authorized(headers: Headers, expected: str | None) -> bool:
    """Whether C{headers} carry the configured client key (always true when none is set).

    Both places a client may put the key are compared, every time, in constant time, so
    neither the answer nor its timing says which one was tried or how close it was.
    """
    if not expected:
        return True
    offered = (headers.getRawHeaders(b"x-api-key") or [b""])[-1]
    authorization = (headers.getRawHeaders(b"authorization") or [b""])[-1]
    bearer = authorization[7:].strip() if authorization[:7].lower() == b"bearer " else b""
    key = expected.encode()
    return hmac.compare_digest(offered, key) | hmac.compare_digest(bearer, key)

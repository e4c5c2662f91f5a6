"""Identifiers ccproxy mints: request ids and message ids in Anthropic's style."""

from __future__ import annotations

import secrets
import string

__all__ = ["new_id", "request_id", "message_id"]

_BASE62 = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    """C{prefix} followed by C{length} random base62 characters (one urandom call)."""
    number = int.from_bytes(secrets.token_bytes(length), "big")  # 8 bits per char > log2(62)
    chars = []
    for _ in range(length):
        number, digit = divmod(number, 62)
        chars.append(_BASE62[digit])
    return prefix + "".join(chars)


def request_id() -> str:
    """A C{request-id} header value (C{req_…})."""
    return new_id("req_")


def message_id() -> str:
    """A message id (C{msg_…})."""
    return new_id("msg_")

"""Identifiers ccproxy mints: request ids and message ids in Anthropic's style."""

from __future__ import annotations

import secrets
import string

__all__ = ["new_id", "request_id", "message_id"]

_BASE62 = string.ascii_letters + string.digits
# Each random byte picks a character: byte % 62. Eight characters come up 5/256 of the time
# instead of 4/256, which leaves well over 5.8 bits of entropy per character (139 bits in
# 24): ids only need to be unique, and one C call per id is cheaper than 24 divisions.
_BYTE_TO_BASE62 = bytes(ord(_BASE62[byte % 62]) for byte in range(256))


def new_id(prefix: str, length: int = 24) -> str:
    """C{prefix} followed by C{length} random base62 characters (one urandom call)."""
    return prefix + secrets.token_bytes(length).translate(_BYTE_TO_BASE62).decode("ascii")


def request_id() -> str:
    """A C{request-id} header value (C{req_…})."""
    return new_id("req_")


def message_id() -> str:
    """A message id (C{msg_…})."""
    return new_id("msg_")

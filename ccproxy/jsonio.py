"""JSON in and out of the hot path: orjson, with the standard library as the fallback.

Every request body (tens of KB from Claude Code), every upstream chunk and every event
sent to the client is JSON, so this is where the proxy spends much of its CPU. orjson
is several times faster than C{json} for both directions. The fallback handles what
orjson refuses on purpose and clients or providers still send: lone surrogates (kept as
their C{\\u} escape), C{NaN}/C{Infinity}, integers beyond 64 bits.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["loads", "dumps"]

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def loads(data: bytes | str) -> Any:
    """Decode JSON. @raise ValueError: not JSON (also RecursionError for absurd nesting)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, keys in insertion order."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError: surrogates, huge ints
        return _encode(value).encode("utf-8", "backslashreplace")

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

__all__ = ["loads", "dumps", "dumps_within", "deeper_than", "Encoded"]


class Encoded:
    """A value already written as JSON, placed as is by L{dumps} wherever it occurs.

    What a request repeats unchanged from turn to turn (the upstream form of each tool)
    is encoded once and spliced into every later body: orjson copies the bytes instead of
    walking the value again.
    """

    __slots__ = ("json", "_fragment")

    def __init__(self, value: Any) -> None:
        self.json: bytes = dumps(value)
        self._fragment = orjson.Fragment(self.json)

    def __repr__(self) -> str:
        return f"Encoded({self.json!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Encoded) and other.json == self.json

    def __hash__(self) -> int:
        return hash(self.json)

    # Immutable, so a copy is the value itself (and orjson's Fragment cannot be copied).
    def __copy__(self) -> Encoded:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Encoded:
        return self


def _orjson_default(value: Any) -> Any:
    if isinstance(value, Encoded):
        return value._fragment
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def _stdlib_default(value: Any) -> Any:
    if isinstance(value, Encoded):
        return json.loads(value.json)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_stdlib_default).encode


def loads(data: bytes | str) -> Any:
    """Decode JSON. @raise ValueError: not JSON (also RecursionError for absurd nesting)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, keys in insertion order; L{Encoded} values as they were written."""
    try:
        return orjson.dumps(value, default=_orjson_default)
    except TypeError:  # orjson.JSONEncodeError: surrogates, huge ints
        return _stdlib_dumps(value)


def dumps_within(value: Any, limit: int) -> bytes | None:
    """L{dumps}(C{value}), or None when C{value} nests more than C{limit} levels deep and orjson
    cannot encode it (the stdlib encoder, which recurses, is never given such a value).

    It does not check the depth of what orjson encodes (254 levels at most): see
    L{deeper_than}.
    """
    try:
        return orjson.dumps(value, default=_orjson_default)
    except TypeError:  # too deep for orjson, or what dumps() hands the stdlib encoder
        return None if _walk_deeper_than(value, limit) else _stdlib_dumps(value)


def _stdlib_dumps(value: Any) -> bytes:
    """What orjson will not encode, as L{dumps} writes it (a lone surrogate as its escape)."""
    return _encode(value).encode("utf-8", "backslashreplace")


def _walk_deeper_than(value: Any, limit: int) -> bool:
    """Level by level, no recursion: whether C{value} nests more than C{limit} deep."""
    level = [value] if isinstance(value, (dict, list)) else []
    for _ in range(limit):
        below: list[Any] = []
        for item in level:
            children = item.values() if isinstance(item, dict) else item
            below.extend(child for child in children if isinstance(child, (dict, list)))
        if not below:
            return False
        level = below
    return bool(level)  # containers below C{limit} levels (at limit 0: whether C{value} is one)


def _wrapped(value: Any, levels: int) -> Any:
    for _ in range(levels):
        value = [value]
    return value


# orjson's depth limit since its early releases: tried first, so that start-up costs two
# small encodes rather than a search (about 1.4 ms here).
_USUAL_DEPTH = 254


def _encodes(levels: int) -> bool:
    try:
        orjson.dumps(_wrapped(0, levels))
    except TypeError:
        return False
    return True


def _orjson_depth_limit() -> int | None:
    """The most levels orjson encodes (254 today), measured once; None if unbounded."""
    if _encodes(_USUAL_DEPTH) and not _encodes(_USUAL_DEPTH + 1):
        return _USUAL_DEPTH
    if _encodes(4096):
        return None
    low, high = 0, 4096  # low encodes, high does not
    while high - low > 1:
        middle = (low + high) // 2
        if _encodes(middle):
            low = middle
        else:
            high = middle
    return low


_ORJSON_DEPTH = _orjson_depth_limit()


def deeper_than(value: Any, limit: int, encoded: bytes | None = None) -> bool:
    """Whether decoded JSON nests arrays and objects more than C{limit} levels deep.

    Checked in C: C{value} wrapped in just enough extra levels that orjson's own depth
    limit is passed exactly when C{value} is deeper than C{limit}. A walk in Python
    decides when that cannot (no such limit, or a value orjson will not encode).

    @param encoded: C{value}'s JSON, if at hand: when it opens no more than C{limit}
        arrays and objects in all (counting brackets in strings too), C{value} cannot
        nest deeper, which two counts of its bytes tell without the check above.
    """
    if encoded is not None and encoded.count(b"[") + encoded.count(b"{") <= limit:
        return False
    if _ORJSON_DEPTH is None or limit >= _ORJSON_DEPTH:
        return _walk_deeper_than(value, limit)
    try:
        orjson.dumps(_wrapped(value, _ORJSON_DEPTH - limit))
        return False
    except TypeError:
        return _walk_deeper_than(value, limit)

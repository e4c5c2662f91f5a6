# -*- test-case-name: tests.convert.test_arguments -*-
"""
Tool-call arguments: upstream C{function.arguments} strings ⇄ Anthropic C{input} objects.

Upstream models and gateways emit broken arguments often enough (truncated streams,
double encoding, concatenated objects) that every rule here is a recovery path, but the
common case, a valid JSON object, costs exactly one JSON decode (PROTOCOL.md H.3).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ccproxy import jsonio

__all__ = ["dump_arguments", "parse_arguments", "split_concatenated"]

RAW_KEY = "_raw_arguments"
"""Key holding unrepairable arguments, so Claude Code's input validation fails visibly."""



def _no_constant(name: str) -> None:
    """Read C{NaN}/C{Infinity} as C{null}: Python accepts them but they are not JSON."""
    return None


_DECODER = json.JSONDecoder(parse_constant=_no_constant)
_LENIENT = json.JSONDecoder(parse_constant=_no_constant, strict=False)  # raw newlines
_NOT_SPACE = re.compile(r"\S")
_OBJECT_JOIN = re.compile(r"\}\s*\{")
# Body of a JSON string, stopping at the closing quote or at a backslash ending the text.
_STRING_BODY = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*', re.DOTALL)
# A run of text outside strings that holds no structural character.
_PLAIN = re.compile(r'[^"{}\[\],]+')
_CLOSER = {"{": "}", "[": "]"}


def parse_arguments(raw: str | None) -> dict[str, Any]:
    """
    Turn an upstream arguments string into a tool input object; never raises.

    C{None}, blank text and JSON C{null} give C{{}}; a JSON object is returned as is; a
    JSON string holding an object (double encoding) is decoded again; any other JSON
    value is wrapped as C{{"value": v}}; C{NaN}/C{Infinity} become C{null} so the input
    re-serialises as valid JSON; invalid JSON is repaired when possible and
    otherwise kept whole under C{"_raw_arguments"} rather than dropped, so the tool does
    not silently run with empty input. For C{{…}{…}} only the first object is kept:
    call L{split_concatenated} first to recover every call.
    """
    if raw is None:
        return {}
    try:
        value = _DECODER.decode(raw)
    except (ValueError, RecursionError):
        if not raw or raw.isspace():
            return {}
        repaired = _repair(raw)
        return {RAW_KEY: raw} if repaired is None else repaired
    if isinstance(value, dict):
        return value
    return _wrap(value)


def split_concatenated(raw: str) -> list[str]:
    """
    Split C{{…}{…}} (two or more whole objects back to back, a gateway bug) into texts.

    Anything else, including a single object or objects followed by garbage, comes back
    as C{[raw]} so the caller hands it to L{parse_arguments} unchanged.
    """
    if _OBJECT_JOIN.search(raw) is None:  # cheap exit for the common single object
        return [raw]
    parts: list[str] = []
    match = _NOT_SPACE.search(raw)
    while match is not None:
        start = match.start()
        try:
            value, end = _DECODER.raw_decode(raw, start)
        except (ValueError, RecursionError):
            return [raw]
        if not isinstance(value, dict):
            return [raw]
        parts.append(raw[start:end])
        match = _NOT_SPACE.search(raw, end)
    return parts if len(parts) > 1 else [raw]


def dump_arguments(value: Mapping[str, Any]) -> str:
    """
    Serialise a tool input for the upstream request, compactly and never as C{""}.

    Non-ASCII stays literal: it is shorter on the wire and token-cheaper for the model.
    """
    return jsonio.dumps(value).decode("utf-8")


def _wrap(value: object) -> dict[str, Any]:
    """Wrap a valid JSON value that is not an object, decoding double-encoded objects."""
    if value is None:
        return {}
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            inner = _DECODER.decode(value)
        except (ValueError, RecursionError):
            pass
        else:
            if isinstance(inner, dict):
                return inner
    return {"value": value}


def _loads_object(text: str) -> dict[str, Any] | None:
    """Decode C{text} leniently, or return C{None} unless it is a JSON object."""
    try:
        value = _LENIENT.decode(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _repair(raw: str) -> dict[str, Any] | None:
    """
    Repair the usual ways arguments break, or return C{None}.

    One scan over the first top-level object drops what follows it, drops trailing
    commas and closes a string or brackets left open by a truncated stream. If that still
    does not decode, the last member is cut at the last comma (a dangling key or a
    half-written literal), closing the brackets that were open there.
    """
    start = len(raw) - len(raw.lstrip())
    if not raw.startswith("{", start):
        return _loads_object(raw)  # only raw control characters may still be fixable
    pieces: list[str] = []
    stack: list[str] = []
    last_comma: tuple[int, str] | None = None
    pos, end = start, len(raw)
    while pos < end:
        char = raw[pos]
        if char == '"':
            close = _match_end(_STRING_BODY, raw, pos + 1)
            if close >= end or raw[close] != '"':  # unclosed; maybe a dangling "\"
                pieces.append(raw[pos:close] + '"')
                break
            pieces.append(raw[pos : close + 1])
            pos = close + 1
        elif char in _CLOSER:
            stack.append(_CLOSER[char])
            pieces.append(char)
            pos += 1
        elif char in "}]":
            if not stack or stack[-1] != char:
                return None
            _drop_trailing_comma(pieces)
            pieces.append(stack.pop())
            pos += 1
            if not stack:
                break  # the first balanced object is complete; the rest is garbage
        elif char == ",":
            last_comma = (len(pieces), "".join(reversed(stack)))
            pieces.append(char)
            pos += 1
        else:
            plain = _match_end(_PLAIN, raw, pos)
            pieces.append(raw[pos:plain])
            pos = plain
    _drop_trailing_comma(pieces)
    repaired = _loads_object("".join(pieces) + "".join(reversed(stack)))
    if repaired is None and stack and last_comma is not None:
        cut, closers = last_comma
        repaired = _loads_object("".join(pieces[:cut]) + closers)
    return repaired


def _drop_trailing_comma(pieces: list[str]) -> None:
    """Remove a comma (and the blanks after it) that ends C{pieces}."""
    index = len(pieces)
    while index and pieces[index - 1].isspace():
        index -= 1
    if index and pieces[index - 1] == ",":
        del pieces[index - 1 :]


def _match_end(pattern: re.Pattern[str], text: str, pos: int) -> int:
    """Return where C{pattern} stops matching at C{pos} (C{pos} itself if it does not)."""
    match = pattern.match(text, pos)
    return pos if match is None else match.end()

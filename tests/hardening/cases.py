"""Malformed Messages requests: a valid base body, the rules for each of its fields, and
hypothesis strategies that break exactly those rules.

Every body built here is invalid by construction (a wrong type, a missing field, an
unknown block type, a value outside its literal set, broken JSON or broken UTF-8), so a
correct proxy answers each with a 4xx before anything goes upstream. The base body uses
every block type, so each block's fields have a path to break.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

from attrs import frozen
from hypothesis import strategies as st

from ccproxy.anthropic import SERVER_TOOL_BLOCK_TYPES

Path = tuple[Any, ...]

BASE: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look at these", "cache_control": {"type": "ephemeral"}},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": "a document"},
                    "title": "notes",
                    "context": "from the user",
                },
                {
                    "type": "search_result",
                    "source": "https://example.com/a",
                    "title": "a result",
                    "content": [{"type": "text", "text": "found it"}],
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "let me check", "signature": "c2ln"},
                {"type": "redacted_thinking", "data": "b3BhcXVl"},
                {"type": "text", "text": "running it"},
                {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {"command": "ls"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01",
                    "content": [{"type": "text", "text": "a.txt"}, {"type": "tool_reference", "tool_name": "Bash"}],
                    "is_error": False,
                },
                {"type": "text", "text": "and now?"},
            ],
        },
    ],
    "system": [{"type": "text", "text": "You are terse."}],
    "tools": [
        {
            "name": "Bash",
            "description": "Run a command",
            "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
            "defer_loading": False,
        }
    ],
    "tool_choice": {"type": "auto", "disable_parallel_tool_use": False},
    "thinking": {"type": "enabled", "budget_tokens": 2048},
    "output_config": {"effort": "high"},
    "stream": True,
    "stop_sequences": ["STOP"],
    "temperature": 0.5,
    "top_p": 0.9,
    "top_k": 5,
    "metadata": {"user_id": "user-1"},
}

KINDS = ("null", "bool", "int", "float", "str", "list", "dict")
BLOCK_TYPES = (
    "text",
    "image",
    "document",
    "search_result",
    "tool_reference",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    # server-tool artefacts, accepted as raw blocks
    *sorted(SERVER_TOOL_BLOCK_TYPES),
)


@frozen
class Field:
    """One breakable field: where it is, which JSON kinds it accepts, its literal values
    (if it is an enum), and whether count_tokens validates it too."""

    path: Path
    kinds: frozenset[str]
    literals: tuple[str, ...] = ()
    count_tokens: bool = True


def _f(path: Path, kinds: str, literals: tuple[str, ...] = (), count_tokens: bool = True) -> Field:
    return Field(path, frozenset(kinds.split()), literals, count_tokens)


U0, A1, U2 = ("messages", 0, "content"), ("messages", 1, "content"), ("messages", 2, "content")
FIELDS: tuple[Field, ...] = (
    _f(("model",), "str"),
    _f(("max_tokens",), "int", count_tokens=False),
    _f(("messages",), "list"),
    _f(("messages", 0), "dict"),
    _f(("messages", 0, "role"), "str", ("user", "assistant", "system")),
    _f(("messages", 1, "role"), "str", ("user", "assistant", "system")),
    _f(U0, "str list"),
    _f(U0 + (0,), "dict"),
    _f(A1 + (3,), "dict"),
    _f(U0 + (0, "text"), "str"),
    _f(U0 + (0, "cache_control"), "null dict"),
    _f(U0 + (1, "source"), "dict"),
    _f(U0 + (1, "cache_control"), "null dict"),
    _f(U0 + (2, "source"), "dict"),
    _f(U0 + (2, "title"), "null str"),
    _f(U0 + (2, "context"), "null str"),
    _f(U0 + (3, "source"), "str"),
    _f(U0 + (3, "title"), "str"),
    _f(U0 + (3, "content"), "list"),
    _f(U0 + (3, "content", 0), "dict"),
    _f(U0 + (3, "content", 0, "text"), "str"),
    _f(A1 + (0, "thinking"), "str"),
    _f(A1 + (0, "signature"), "str"),
    _f(A1 + (1, "data"), "str"),
    _f(A1 + (2, "text"), "str"),
    _f(A1 + (3, "id"), "str"),
    _f(A1 + (3, "name"), "str"),
    _f(A1 + (3, "input"), "dict"),
    _f(A1 + (3, "cache_control"), "null dict"),
    _f(U2 + (0, "tool_use_id"), "str"),
    _f(U2 + (0, "content"), "null str list"),
    _f(U2 + (0, "content", 0), "dict"),
    _f(U2 + (0, "content", 0, "text"), "str"),
    _f(U2 + (0, "content", 1, "tool_name"), "str"),
    _f(U2 + (0, "is_error"), "bool"),
    _f(("system",), "null str list"),
    _f(("system", 0), "dict"),
    _f(("system", 0, "text"), "str"),
    _f(("tools",), "list"),
    _f(("tools", 0), "dict"),
    _f(("tools", 0, "name"), "str"),
    _f(("tools", 0, "description"), "null str"),
    _f(("tools", 0, "input_schema"), "null dict"),
    _f(("tools", 0, "type"), "null str"),
    _f(("tools", 0, "defer_loading"), "bool"),
    _f(("tool_choice",), "null dict", count_tokens=False),
    _f(("tool_choice", "type"), "str", ("auto", "any", "tool", "none"), count_tokens=False),
    _f(("tool_choice", "name"), "null str", count_tokens=False),
    _f(("tool_choice", "disable_parallel_tool_use"), "bool", count_tokens=False),
    _f(("thinking",), "null dict", count_tokens=False),
    _f(("thinking", "type"), "str", count_tokens=False),
    _f(("thinking", "budget_tokens"), "null int", count_tokens=False),
    _f(("thinking", "display"), "null str", count_tokens=False),
    _f(("output_config",), "null dict", count_tokens=False),
    _f(("output_config", "effort"), "null str", count_tokens=False),
    _f(("output_config", "format"), "null dict", count_tokens=False),
    _f(("stream",), "bool", count_tokens=False),
    _f(("stop_sequences",), "list", count_tokens=False),
    _f(("stop_sequences", 0), "str", count_tokens=False),
    _f(("temperature",), "null int float", count_tokens=False),
    _f(("top_p",), "null int float", count_tokens=False),
    _f(("top_k",), "null int", count_tokens=False),
    _f(("metadata",), "null dict", count_tokens=False),
)

# Objects and the keys they cannot do without.
REQUIRED: tuple[tuple[Path, str, bool], ...] = (
    ((), "model", True),
    ((), "messages", True),
    ((), "max_tokens", False),
    (("messages", 0), "role", True),
    (("messages", 0), "content", True),
    (U0 + (0,), "type", True),
    (U0 + (0,), "text", True),
    (U0 + (1,), "source", True),
    (U0 + (2,), "source", True),
    (U0 + (3,), "source", True),
    (U0 + (3,), "title", True),
    (A1 + (0,), "thinking", True),
    (A1 + (1,), "data", True),
    (A1 + (3,), "id", True),
    (A1 + (3,), "name", True),
    (A1 + (3,), "input", True),
    (U2 + (0,), "tool_use_id", True),
    (U2 + (0, "content", 1), "tool_name", True),
    (("system", 0), "text", True),
    (("tools", 0), "name", True),
    (("tool_choice",), "type", False),
    (("thinking",), "type", False),
)

# Paths of every block's "type", for unknown block types.
BLOCK_PATHS: tuple[Path, ...] = tuple(
    [U0 + (i,) for i in range(4)]
    + [A1 + (i,) for i in range(4)]
    + [U2 + (i,) for i in range(2)]
    + [U2 + (0, "content", i) for i in range(2)]
)

# One plain wrong value per kind, for the exhaustive (non-random) sweep.
CANONICAL: dict[str, list[Any]] = {
    "null": [None],
    "bool": [True, False],
    "int": [0, -1, 7, 2**70],
    "float": [1.5, -0.25, 1e300],
    "str": ["", "x", "user ", "\u00e9\u4e2d\U0001f600"],
    "list": [[], [1], [{"type": "text", "text": "x"}]],
    "dict": [{}, {"type": "text"}, {"a": [1, {"b": None}]}],
}


def base(count_tokens: bool = False) -> dict[str, Any]:
    """A deep copy of the valid base body (without generation knobs for count_tokens)."""
    body = copy.deepcopy(BASE)
    if count_tokens:
        for name in ("max_tokens", "tool_choice", "thinking", "output_config", "stream", "stop_sequences"):
            body.pop(name)
        for name in ("temperature", "top_p", "top_k", "metadata"):
            body.pop(name)
    return body


def put(body: Any, path: Path, value: Any) -> Any:
    """C{body} with the value at C{path} replaced (in place); returns C{body}."""
    if not path:
        return value
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return body


def drop(body: Any, path: Path, key: str) -> Any:
    """C{body} without C{key} in the object at C{path} (in place)."""
    target = body
    for step in path:
        target = target[step]
    del target[key]
    return body


def is_wrong(field: Field, value: Any) -> bool:
    """Whether C{value} breaks C{field} (the strategies only make such values)."""
    if field.literals:
        return not (isinstance(value, str) and value in field.literals)
    return kind_of(value) not in field.kinds


def kind_of(value: Any) -> str:
    """The JSON kind of a decoded value (bool before int: JSON keeps them apart)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list"
    return "dict"


# -- hypothesis strategies -----------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
_by_kind: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "bool": st.booleans(),
    "int": st.integers() | st.sampled_from([2**63, -(2**63) - 1, 10**40]),
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "str": st.text(max_size=30),
    "list": st.lists(json_values, max_size=3),
    "dict": st.dictionaries(st.text(max_size=8), json_values, max_size=3),
}


def _wrong_value(field: Field) -> st.SearchStrategy[Any]:
    """Values that break C{field}: other JSON kinds, or strings outside its literals."""
    kinds = [kind for kind in KINDS if kind not in field.kinds or (field.literals and kind == "str")]
    values = st.one_of([_by_kind[kind] for kind in kinds])
    return values.filter(lambda value: is_wrong(field, value)) if field.literals else values


_WRONG = {field: _wrong_value(field) for field in FIELDS}
_block_type = st.text(max_size=20).filter(lambda t: t not in BLOCK_TYPES)


@st.composite
def broken_body(draw: st.DrawFn, count_tokens: bool = False) -> tuple[str, dict[str, Any] | list[Any]]:
    """A base body with one to three rules broken; returns (what was broken, body)."""
    body: Any = base(count_tokens)
    fields = [f for f in FIELDS if f.count_tokens or not count_tokens]
    required = [r for r in REQUIRED if r[2] or not count_tokens]
    what = []
    for _ in range(draw(st.integers(1, 3))):
        hows = ["type", "type", "type", "missing", "block"] + ([] if count_tokens else ["empty"])
        how = draw(st.sampled_from(hows))
        try:
            if how == "type":
                field = draw(st.sampled_from(fields))
                put(body, field.path, draw(_WRONG[field]))
                what.append(f"wrong {'.'.join(map(str, field.path))}")
            elif how == "missing":
                path, key, _ = draw(st.sampled_from(required))
                drop(body, path, key)
                what.append(f"missing {'.'.join(map(str, path + (key,)))}")
            elif how == "block":
                path = draw(st.sampled_from(BLOCK_PATHS))
                kind = draw(_block_type)
                put(body, path + ("type",), kind)
                what.append(f"block type {kind!r}")
            else:
                put(body, ("messages",), [])
                what.append("no messages")
        except (KeyError, IndexError, TypeError):
            # an earlier break already removed or replaced the container: still broken
            continue
    return ", ".join(what), body


@st.composite
def broken_json(draw: st.DrawFn) -> bytes:
    """Bytes that are not one valid JSON document (checked)."""
    text = json.dumps(base(), separators=(",", ":")).encode()
    how = draw(st.sampled_from(["cut", "splice", "garbage"]))
    if how == "cut":
        raw = text[: draw(st.integers(0, len(text) - 1))]
    elif how == "splice":
        at = draw(st.integers(0, len(text)))
        junk = draw(st.sampled_from([b"{", b"]", b",", b'"', b":", b"\\", b"\x00", b"}{", b"'", b"tru", b"01"]))
        raw = text[:at] + junk + text[at:]
    else:
        raw = draw(st.binary(min_size=1, max_size=200))
    return raw if not _valid_json(raw) else raw + b"}"


def _valid_json(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except (ValueError, RecursionError):
        return False
    return True


# -- exhaustive sweeps ---------------------------------------------------------------------


def every_wrong_type(count_tokens: bool = False) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each field with each canonical wrong value, one at a time."""
    for field in FIELDS:
        if count_tokens and not field.count_tokens:
            continue
        values = [v for kind in KINDS for v in CANONICAL[kind]] + ["USER", "Auto", "tool_use"]
        for value in values:
            if is_wrong(field, value):
                yield f"wrong {'.'.join(map(str, field.path))} = {value!r}", put(base(count_tokens), field.path, value)


def every_missing_field(count_tokens: bool = False) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each required key removed, one at a time."""
    for path, key, on_count in REQUIRED:
        if count_tokens and not on_count:
            continue
        yield f"missing {'.'.join(map(str, path + (key,)))}", drop(base(count_tokens), path, key)


def every_cut(count_tokens: bool = False) -> Iterator[tuple[str, bytes]]:
    """The base body cut short at every byte."""
    text = json.dumps(base(count_tokens), separators=(",", ":")).encode()
    for at in range(len(text)):
        yield f"cut at {at}", text[:at]


def every_bad_byte(count_tokens: bool = False) -> Iterator[tuple[str, bytes]]:
    """The base body with a byte that is never valid UTF-8 (0xFF) inserted at every offset."""
    text = json.dumps(base(count_tokens), separators=(",", ":")).encode()
    for at in range(len(text) + 1):
        yield f"0xFF at {at}", text[:at] + b"\xff" + text[at:]

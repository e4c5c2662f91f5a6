"""Tests for L{ccproxy.convert.arguments} (PROTOCOL.md H.3 "Arguments", H.11 item 7)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccproxy.convert.arguments import (
    dump_arguments,
    parse_arguments,
    split_concatenated,
)

FINITE = st.floats(allow_nan=False, allow_infinity=False)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | FINITE | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)
JSON_OBJECTS = st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=5)


@pytest.mark.parametrize("raw", ["", "   ", "\n\t ", None])
def test_h11_7_empty_string_arguments_become_empty_object(raw: str | None) -> None:
    """Empty, blank or missing arguments are an empty input, not an error."""
    assert parse_arguments(raw) == {}


def test_h11_7_empty_object_string() -> None:
    """C{"{}"} is the empty input."""
    assert parse_arguments("{}") == {}


def test_h11_7_json_null_becomes_empty_object() -> None:
    """JSON C{null} as the arguments text means no arguments."""
    assert parse_arguments("null") == {}


def test_h11_7_valid_object_passes_through() -> None:
    """A valid object, non-ASCII included, comes back unchanged."""
    raw = '{"command": "ls -la", "path": "/tmp/é", "n": [1, 2.5, true, null]}'
    assert parse_arguments(raw) == json.loads(raw)


def test_h11_7_valid_object_costs_one_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    """The common path decodes the text once and does nothing else."""
    calls: list[str] = []
    original = json.JSONDecoder.decode

    def spy(self: json.JSONDecoder, s: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(s)
        return original(self, s, *args, **kwargs)

    monkeypatch.setattr(json.JSONDecoder, "decode", spy)
    assert parse_arguments('{"a": 1}') == {"a": 1}
    assert calls == ['{"a": 1}']


def test_h11_7_double_encoded_object_is_decoded() -> None:
    """A JSON string holding a JSON object (double encoding) is decoded again."""
    raw = json.dumps(json.dumps({"command": "ls", "timeout": 5}))
    assert parse_arguments(raw) == {"command": "ls", "timeout": 5}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("[1, 2]", {"value": [1, 2]}),
        ("42", {"value": 42}),
        ('"ls -la"', {"value": "ls -la"}),
        ('"{not json"', {"value": "{not json"}),
        ('"[1]"', {"value": "[1]"}),
        ("true", {"value": True}),
    ],
)
def test_h11_7_non_object_json_is_wrapped(raw: str, expected: dict[str, Any]) -> None:
    """Valid JSON that is not an object is wrapped as C{{"value": …}}."""
    assert parse_arguments(raw) == expected


def test_h11_7_nan_becomes_null() -> None:
    """C{NaN}/C{Infinity}, accepted by Python but not JSON, are read as C{null}."""
    assert parse_arguments('{"a": NaN, "b": -Infinity}') == {"a": None, "b": None}


@pytest.mark.parametrize(
    "raw", ['{"a":1}xyz', '{"a":1}}', '{"a":1}\n```', '  {"a":1} trailing words']
)
def test_h11_7_trailing_garbage_is_dropped(raw: str) -> None:
    """Text after the first balanced top-level object is ignored."""
    assert parse_arguments(raw) == {"a": 1}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"command": "ls', {"command": "ls"}),
        ('{"command": "ls -la"', {"command": "ls -la"}),
        ('{"a": [1, 2', {"a": [1, 2]}),
        ('{"a": {"b": "c', {"a": {"b": "c"}}),
        ('{"a": "x\\', {"a": "x"}),
        ('{"a": "say \\"hi', {"a": 'say "hi'}),
        ('{"a": [1, {"b": "}]', {"a": [1, {"b": "}]"}]}),
    ],
)
def test_h11_7_truncated_arguments_are_closed(raw: str, expected: dict[str, Any]) -> None:
    """An open string (even after a dangling backslash) and open brackets are closed."""
    assert parse_arguments(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"a":1,}', {"a": 1}),
        ('{"a": [1, 2, ], }', {"a": [1, 2]}),
        ('{"a": "x,}", }', {"a": "x,}"}),
        ('{"a": [1,\n', {"a": [1]}),
    ],
)
def test_h11_7_trailing_commas_are_removed(raw: str, expected: dict[str, Any]) -> None:
    """Trailing commas go; commas and brackets inside strings are left alone."""
    assert parse_arguments(raw) == expected


@pytest.mark.parametrize(
    "raw", ['{"a": 1, "b"', '{"a": 1, "b": tr', '{"a": 1, "b": ', '{"a": 1, "b": "\\u12']
)
def test_h11_7_incomplete_last_member_is_cut(raw: str) -> None:
    """A last member that cannot be closed (dangling key, half literal) is dropped."""
    assert parse_arguments(raw) == {"a": 1}


def test_h11_7_raw_control_characters_are_accepted() -> None:
    """Literal newlines and tabs inside strings, a common model slip, are accepted."""
    assert parse_arguments('{"content": "line 1\nline 2\tend"}') == {
        "content": "line 1\nline 2\tend"
    }


@pytest.mark.parametrize(
    "raw", ["not json", '{"a":}', '{"a": 1]', "[1, 2", "{'a': 1}", "```json\n{}"]
)
def test_h11_7_invalid_json_is_kept_raw(raw: str) -> None:
    """Unrepairable text is kept whole under C{_raw_arguments}, never turned into C{{}}."""
    assert parse_arguments(raw) == {"_raw_arguments": raw}


def test_h11_7_concatenated_objects_parse_to_the_first() -> None:
    """Without splitting, C{{…}{…}} yields the first object (the rest is garbage)."""
    assert parse_arguments('{"a":1}{"b":2}') == {"a": 1}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"a":1}{"b":2}', ['{"a":1}', '{"b":2}']),
        ('{"a":1} \n{"b":2}{}', ['{"a":1}', '{"b":2}', "{}"]),
        (' {"a":"}{"}{"b":[{}]} ', ['{"a":"}{"}', '{"b":[{}]}']),
    ],
)
def test_h11_7_concatenated_objects_are_split(raw: str, expected: list[str]) -> None:
    """Two or more whole objects back to back come back as separate texts."""
    assert split_concatenated(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ['{"a":1}', '{"a":"}{"}', '{"a":1}{"b"', '{"a":1}xyz{"b":2}', "[1]{}", "", "}{"],
)
def test_h11_7_non_concatenated_text_is_not_split(raw: str) -> None:
    """A single object, garbage or an incomplete second object stay one text."""
    assert split_concatenated(raw) == [raw]


def test_h11_7_dump_is_compact_and_never_empty() -> None:
    """Request arguments are compact JSON, non-ASCII kept, and C{{}} is C{"{}"}."""
    assert dump_arguments({}) == "{}"
    assert dump_arguments({"path": "/tmp/é", "n": [1, 2]}) == '{"path":"/tmp/é","n":[1,2]}'


@given(st.text())
def test_h11_7_parse_never_raises_on_any_text(raw: str) -> None:
    """Any text whatsoever gives a dict."""
    assert isinstance(parse_arguments(raw), dict)


@given(JSON_OBJECTS, st.data())
def test_h11_7_parse_never_raises_on_truncated_objects(
    value: dict[str, Any], data: st.DataObject
) -> None:
    """Every prefix of a real object (a cut stream) gives a dict."""
    text = json.dumps(value)
    cut = data.draw(st.integers(0, len(text)))
    assert isinstance(parse_arguments(text[:cut]), dict)


@given(st.text(alphabet='{}[]",:\\ abc01\n', max_size=40))
def test_h11_7_parse_never_raises_on_structural_noise(raw: str) -> None:
    """Text made of JSON punctuation, the repair path's worst case, gives a dict."""
    assert isinstance(parse_arguments(raw), dict)
    assert isinstance(split_concatenated(raw), list)


def test_h11_7_parse_survives_deep_nesting() -> None:
    """Nesting deep enough to exhaust recursion is kept raw, not a crash."""
    for raw in ["[" * 100_000, '{"a":' * 100_000, "[" * 100_000 + "]" * 100_000]:
        assert isinstance(parse_arguments(raw), dict)


@given(JSON_OBJECTS)
def test_h11_7_dump_then_parse_round_trips(value: dict[str, Any]) -> None:
    """What the request direction sends, the response direction reads back unchanged."""
    assert parse_arguments(dump_arguments(value)) == value


@given(st.lists(JSON_OBJECTS, min_size=1, max_size=3))
def test_h11_7_split_recovers_each_object(values: list[dict[str, Any]]) -> None:
    """Concatenated objects split back into exactly the objects that were joined."""
    texts = [dump_arguments(v) for v in values]
    parts = split_concatenated("".join(texts))
    assert [parse_arguments(p) for p in parts] == values


def test_h11_7_lone_surrogates_do_not_crash() -> None:
    """Lone surrogates, escaped or raw, are data like any other."""
    assert parse_arguments('{"a": "\\ud800"}') == {"a": "\ud800"}
    assert parse_arguments('{"a": "\\ud800') == {"a": "\ud800"}
    assert parse_arguments("\ud800") == {"_raw_arguments": "\ud800"}

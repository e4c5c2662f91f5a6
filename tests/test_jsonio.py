"""ccproxy.jsonio: orjson with a standard-library fallback, and values encoded once."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccproxy import jsonio


def test_an_encoded_value_is_placed_as_written() -> None:
    tool = jsonio.Encoded({"type": "function", "function": {"name": "Bash", "parameters": {}}})
    body = {"model": "m", "tools": [tool, tool]}
    written = jsonio.dumps(body)
    assert written == jsonio.dumps({"model": "m", "tools": [json.loads(tool.json)] * 2})
    assert json.loads(written)["tools"][1]["function"]["name"] == "Bash"


@pytest.mark.parametrize("awkward", ["\ud800", 2**70], ids=["lone surrogate", "huge int"])
def test_an_encoded_value_survives_the_fallback_encoder(awkward: object) -> None:
    """Something orjson refuses elsewhere in the body sends it all through the standard library."""
    encoded = jsonio.Encoded({"description": "half an emoji \ud83d", "n": 1})
    written = jsonio.dumps({"tools": [encoded], "other": awkward})
    assert json.loads(written)["tools"] == [json.loads(encoded.json)]
    assert b'"half an emoji \\ud83d"' in written


def test_encoded_values_compare_by_their_json_and_copy_as_themselves() -> None:
    one, same, other = jsonio.Encoded([1, {"a": "b"}]), jsonio.Encoded([1, {"a": "b"}]), jsonio.Encoded([2])
    assert one == same and hash(one) == hash(same) and one != other and one != [1, {"a": "b"}]
    assert copy.copy(one) is one and copy.deepcopy({"x": [one]})["x"][0] is one


def test_objects_orjson_cannot_encode_still_raise() -> None:
    with pytest.raises(TypeError):
        jsonio.dumps({"x": object()})


def _nested(depth: int, inner: object = 0) -> object:
    value = inner
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [1, 100, 128, 129, 254, 255, 300, 900])
def test_dumps_within_encodes_what_it_can_and_refuses_only_what_is_too_deep(depth: int) -> None:
    value = _nested(depth)
    expected = json.dumps(value, separators=(",", ":")).encode()
    for limit in (128, 500):
        encoded = jsonio.dumps_within(value, limit)
        if depth > limit and encoded is None:
            continue  # refused, never handed to the recursive encoder
        assert encoded == expected
        assert depth <= 254 or depth <= limit  # orjson's own limit, or within the caller's
    assert jsonio.deeper_than(value, 128) is (depth > 128)


def test_dumps_within_falls_back_for_what_orjson_will_not_encode() -> None:
    value = {"text": "\ud800 lone surrogate", "n": _nested(3)}  # four levels deep
    assert jsonio.dumps_within(value, 4) == jsonio.dumps(value)
    assert jsonio.dumps_within(value, 3) is None


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet="ab[]{}\\\"", max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(alphabet="k[{", max_size=3), children, max_size=3),
    max_leaves=30,
)


@settings(max_examples=300)
@given(value=_JSON, limit=st.integers(0, 12))
def test_deeper_than_answers_alike_with_the_json_at_hand(value: object, limit: int) -> None:
    """Counting the brackets of the JSON (strings' brackets too) only ever skips the check when
    the value cannot nest deeper."""
    assert jsonio.deeper_than(value, limit, jsonio.dumps(value)) == jsonio.deeper_than(value, limit)


@pytest.mark.parametrize("value", [-(2**63) - 1, "\ud800", 0, "x"])
def test_a_scalar_is_not_deeper_than_zero_levels(value: object) -> None:
    """Also when orjson will not encode it (an integer beyond 64 bits, a lone surrogate) and the
    walk in Python decides."""
    assert not jsonio.deeper_than(value, 0)
    assert jsonio.deeper_than([value], 0) and not jsonio.deeper_than([value], 1)


def test_deeper_than_with_the_json_at_hand_at_the_limit() -> None:
    value: object = "x"
    for _ in range(5):
        value = [value]
    encoded = jsonio.dumps(value)
    assert not jsonio.deeper_than(value, 5, encoded) and jsonio.deeper_than(value, 4, encoded)


@pytest.mark.parametrize("guess", [254, 100, 300])
def test_orjson_depth_limit_is_exact_whether_or_not_the_usual_limit_holds(
    guess: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jsonio, "_USUAL_DEPTH", guess)
    limit = jsonio._orjson_depth_limit()
    if limit is None:
        assert jsonio._encodes(4096)
    else:
        assert jsonio._encodes(limit) and not jsonio._encodes(limit + 1)

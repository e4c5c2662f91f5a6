"""ccproxy.jsonio: orjson with a standard-library fallback, and values encoded once."""

from __future__ import annotations

import copy
import json

import pytest

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

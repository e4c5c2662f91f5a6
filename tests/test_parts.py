"""Validated messages and tools remembered across requests (ccproxy.parts)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.requests import claude_code_request
from ccproxy import jsonio, token_parts
from ccproxy.anthropic import RequestError, Tool
from ccproxy.convert.request import _chat_tool, convert_request
from ccproxy.openai import ChatTool, to_dict, wire_payload
from ccproxy.parts import RequestParts
from ccproxy.providers import profile_named
from ccproxy.tokens import TokenCounter
from ccproxy.validation import MAX_JSON_DEPTH, parse_messages_request

FIXTURES = Path(__file__).parent / "fixtures"
BODIES = sorted((FIXTURES / "anthropic").glob("*.json")) + sorted((FIXTURES / "tokens").glob("*.json"))


def _body(path: Path) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    body.setdefault("max_tokens", 1024)
    return body


def _bench_body() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(jsonio.dumps(claude_code_request("bench-model", stream=False)))
    return body


@pytest.mark.parametrize("path", BODIES, ids=lambda p: p.stem)
def test_split_parses_and_counts_exactly_as_the_whole_body(path: Path) -> None:
    body = _body(path)
    parts = RequestParts().split(body)
    assert parts is not None
    assert parts.request == parse_messages_request(body)
    counter = TokenCounter()
    assert counter.count_request(body, parts.texts) == counter.count_request(body) == _flat_count(counter, body)


def test_a_resent_conversation_reuses_its_messages_and_tools() -> None:
    memo = RequestParts()
    first = _bench_body()
    second = _bench_body()  # the next turn: the same conversation plus a new user message
    second["messages"].append({"role": "user", "content": "and now run the tests"})
    split_one, split_two = memo.split(first), memo.split(second)
    assert split_one is not None and split_two is not None
    one, two = split_one.request, split_two.request
    assert all(a is b for a, b in zip(one.messages, two.messages, strict=False))
    assert len(two.messages) == len(one.messages) + 1
    assert all(a is b for a, b in zip(one.tools, two.tools, strict=True))
    assert one.system is two.system and one.metadata is two.metadata  # the rest, validated once
    assert one is not two and one.messages is not two.messages and one.tools is not two.tools  # each request's own


def test_a_changed_message_is_validated_again() -> None:
    memo = RequestParts()
    body = _bench_body()
    first = memo.split(body)
    body["messages"][0] = {"role": "user", "content": "something else"}
    second = memo.split(body)
    assert first is not None and second is not None
    assert second.request.messages[0] is not first.request.messages[0]
    assert second.request.messages[0].content == "something else"
    assert second.request.messages[1] is first.request.messages[1]


def test_a_changed_rest_is_validated_again() -> None:
    memo = RequestParts()
    body = _bench_body()
    first = memo.split(body)
    body["max_tokens"] = 7
    second = memo.split(body)
    assert first is not None and second is not None
    assert (first.request.max_tokens, second.request.max_tokens) == (32000, 7)
    assert second.request.messages[0] is first.request.messages[0]


@pytest.mark.parametrize(
    "change",
    [
        lambda body: body["messages"].append({"role": "robot", "content": "hi"}),
        lambda body: body["messages"].append("not an object"),
        lambda body: body["tools"].append({"description": "no name"}),
        lambda body: body.update(tools={"Bash": {}}),
        lambda body: body.update(messages="hello"),
        lambda body: body.update(max_tokens="many"),
        lambda body: body.update(max_tokens=-1),
        lambda body: body.update(messages=[]),
        lambda body: body.pop("model"),
        lambda body: body.update(system=[{"type": "text"}]),
    ],
)
def test_an_invalid_part_leaves_the_error_to_the_whole_body(change: Any) -> None:
    body = _bench_body()
    change(body)
    memo = RequestParts()
    memo.split(_bench_body())  # what a valid turn left in the memo changes nothing
    assert memo.split(body) is None
    with pytest.raises(RequestError):
        parse_messages_request(body)


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize("extra", [0, 1])  # the body's depth: 128, then 129
@pytest.mark.parametrize(
    "place",
    [
        lambda body, extra: body["messages"].append({"role": "user", "content": "x", "n": _nested(126 + extra)}),
        lambda body, extra: body["messages"].append(_nested(127 + extra)),
        lambda body, extra: body["tools"][0]["input_schema"].update(n=_nested(124 + extra)),
        lambda body, extra: body.update(tools=[_nested(127 + extra)]),
        lambda body, extra: body.update(metadata={"user_id": "u", "n": _nested(126 + extra)}),
        lambda body, extra: body.update(n=_nested(127 + extra)),
        lambda body, extra: body["messages"].append({"role": "user", "content": "x", "n": _nested(300 + extra)}),
        lambda body, extra: body.update(n=_nested(900 + extra)),
    ],
)
def test_split_refuses_exactly_the_bodies_deeper_than_the_limit(place: Any, extra: int) -> None:
    body = _bench_body()
    place(body, extra)
    too_deep = jsonio.deeper_than(body, MAX_JSON_DEPTH)
    for memo in (RequestParts(), _warm_memo()):
        if too_deep:
            with pytest.raises(RequestError, match="nests deeper than 128 levels"):
                memo.split(body)
        else:
            memo.split(body)  # valid or not, but not refused for its depth
    if not too_deep:
        assert body_depth(body) == MAX_JSON_DEPTH


def _warm_memo() -> RequestParts:
    memo = RequestParts()
    assert memo.split(_bench_body()) is not None
    return memo


def body_depth(value: Any) -> int:
    """How many levels of arrays and objects C{value} nests (recursively: tests only)."""
    if not isinstance(value, (dict, list)):
        return 0
    children = value.values() if isinstance(value, dict) else value
    return 1 + max((body_depth(child) for child in children), default=0)


def test_an_invalid_part_is_not_remembered_as_valid() -> None:
    memo = RequestParts()
    body = _bench_body()
    body["messages"].append({"role": "robot", "content": "hi"})
    assert memo.split(body) is None
    assert memo.split(body) is None


def test_the_memo_forgets_the_least_recently_used_first() -> None:
    one, two, three = ({"role": "user", "content": text * 40} for text in "abc")
    size = len(jsonio.dumps(one))
    memo = RequestParts(message_bytes=2 * size)
    for message in (one, two, one, three):  # `one` used again, so `two` is the oldest when `three` arrives
        memo.split({"model": "m", "max_tokens": 1, "messages": [message]})
    kept = memo.split({"model": "m", "max_tokens": 1, "messages": [one]})
    again = memo.split({"model": "m", "max_tokens": 1, "messages": [one]})
    assert kept is not None and again is not None and kept.request.messages[0] is again.request.messages[0]
    assert len(memo._messages) == 2
    assert memo._messages.get(jsonio.dumps(two)) is None


@pytest.mark.parametrize("profile", ["generic", "openai", "openrouter", "gemini", "mistral", "deepseek", "ollama"])
def test_converting_a_request_leaves_the_remembered_parts_as_they_were(profile: str) -> None:
    """The conversion builds new objects, or shares remembered ones it never edits: what is
    remembered serves every later request."""
    memo = RequestParts()

    def payload() -> dict[str, Any]:
        body = _bench_body()
        parts = memo.split(body)
        assert parts is not None
        parsed = parts.request
        request = convert_request(parsed, "some-model", profile_named(profile), session_id="s").request
        for tool in request.tools or []:  # each tool's remembered JSON is the tool
            assert json.loads(tool.encoded().json) == _plain_tool(tool)
        return to_dict(request)

    first = payload()
    remembered = memo.split(_bench_body())
    assert remembered is not None
    before = copy.deepcopy((remembered.request, first))
    second = payload()
    assert (remembered.request, first) == before
    assert second == first
    for tool in remembered.request.tools:  # what each tool remembers is still what converting it afresh makes
        for key, made in tool._converted.items():
            assert made == _chat_tool(attrs.evolve(tool), key)


def _plain_tool(tool: ChatTool) -> dict[str, Any]:
    """The wire form of C{tool}, built by hand: its fields, without the unset ones and the memo."""
    return attrs.asdict(tool, filter=lambda field, value: value is not None and field.name != "_encoded")


def test_a_resent_tool_is_encoded_once() -> None:
    """The upstream body splices in each remembered tool's JSON, made when it was first sent."""
    memo = RequestParts()
    profile = profile_named("openrouter")

    def tools_sent() -> list[Any]:
        body = _bench_body()
        parts = memo.split(body)
        assert parts is not None
        parsed = parts.request
        request = convert_request(parsed, "some-model", profile).request
        payload = wire_payload(request)
        assert to_dict(request)["tools"] == [_plain_tool(tool) for tool in request.tools or []]
        tools: list[Any] = payload["tools"]
        return tools

    first, second = tools_sent(), tools_sent()
    assert len(first) == 12 and all(isinstance(tool, jsonio.Encoded) for tool in first)
    assert all(again is before for again, before in zip(second, first, strict=True))


def test_a_tool_is_converted_once_per_profile_rewriter() -> None:
    tool = Tool("Bash", "Run a command", {"type": "object", "properties": {"command": {"type": "string"}}})
    calls: list[str] = []

    def convert(tool: Tool, key: str) -> str:
        calls.append(key)
        return f"{tool.name} for {key}"

    assert tool.converted("a", convert) == "Bash for a"
    assert tool.converted("a", convert) == "Bash for a"
    assert tool.converted("b", convert) == "Bash for b"
    assert calls == ["a", "b"]
    assert tool == Tool("Bash", "Run a command", {"type": "object", "properties": {"command": {"type": "string"}}})


# -- property: remembered or not, the same request and the same count ---------------------------------------------

_TEXTS = st.sampled_from(["hi", "", "  ", "line\nnext", "日本語", "x" * 50, '{"a": 1}'])
_NAMES = st.sampled_from(["Bash", "Read", "NotebookEdit", "mcp__server__tool"])
_TEXT_BLOCK = st.builds(lambda t: {"type": "text", "text": t or "t"}, _TEXTS)
_BLOCKS = st.one_of(
    _TEXT_BLOCK,
    st.builds(lambda n, t: {"type": "tool_use", "id": "toolu_1", "name": n, "input": {"q": t}}, _NAMES, _TEXTS),
    st.builds(lambda t: {"type": "tool_result", "tool_use_id": "toolu_1", "content": t}, _TEXTS),
    st.builds(lambda b: {"type": "tool_result", "tool_use_id": "toolu_1", "content": [b]}, _TEXT_BLOCK),
    st.builds(lambda n: {"type": "tool_reference", "tool_name": n}, _NAMES),
    st.builds(lambda t: {"type": "thinking", "thinking": t, "signature": "sig"}, _TEXTS),
    st.builds(lambda b: {"type": "mid_conv_system", "content": [b]}, _TEXT_BLOCK),
    st.just({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}),
)
_MESSAGES = st.lists(
    st.builds(
        lambda role, content: {"role": role, "content": content},
        st.sampled_from(["user", "assistant", "system"]),
        st.one_of(_TEXTS.filter(bool), st.lists(_BLOCKS, min_size=1, max_size=4)),
    ),
    min_size=1,
    max_size=6,
)
_TOOLS = st.lists(
    st.builds(
        lambda n, d, deferred: {
            "name": n,
            "description": d,
            "defer_loading": deferred,
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
        _NAMES,
        _TEXTS,
        st.booleans(),
    ),
    max_size=4,
)


def _flat_count(counter: TokenCounter, body: dict[str, Any]) -> int:
    """The count as it was before parts: every text of the request in one flat list."""
    found = token_parts.RequestText(fixed=token_parts.REPLY_TOKENS)
    system = body.get("system")
    if system:
        found.fixed += token_parts.MESSAGE_TOKENS
        if isinstance(system, str):
            found.add(system)
        for block in system if isinstance(system, list) else []:
            if not block.get("text", "").startswith(token_parts.BILLING_PREFIX):
                found.add(block.get("text"))
    for message in body["messages"]:
        found.fixed += token_parts.MESSAGE_TOKENS
        found.add_content(message.get("content"))
    for tool in body.get("tools", []):
        if tool.get("defer_loading") and tool.get("name") not in found.tool_names:
            continue
        found.fixed += token_parts.TOOL_TOKENS
        found.add(tool.get("name"))
        found.add(tool.get("description"))
        if "input_schema" in tool:
            found.add_json(tool["input_schema"])
    return max(1, found.fixed + counter.count_texts(found.texts))


@settings(max_examples=150, deadline=None)
@given(_MESSAGES, _MESSAGES, _TOOLS, _TOOLS)
def test_a_warm_memo_parses_and_counts_as_the_whole_body(
    earlier: list[Any], later: list[Any], earlier_tools: list[Any], tools: list[Any]
) -> None:
    """Whatever an earlier request left in the memo, a body splits into exactly what the whole-body
    validation and count make of it."""
    memo = RequestParts()
    counter = TokenCounter()
    memo.split({"model": "m", "max_tokens": 1, "messages": earlier, "tools": earlier_tools})
    body = {"model": "m", "max_tokens": 1, "messages": earlier[:2] + later, "tools": tools}
    parts = memo.split(body)
    assert parts is not None
    assert parts.request == parse_messages_request(body)
    assert counter.count_request(body, parts.texts) == counter.count_request(body) == _flat_count(counter, body)

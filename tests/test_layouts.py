"""A resent body split by its bytes (ccproxy.layouts, RequestParts.split_resent)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bench.requests import claude_code_request
from ccproxy import jsonio
from ccproxy.anthropic import RequestError
from ccproxy.layouts import KEEP, Layouts
from ccproxy.parts import Parts, RequestParts
from ccproxy.tokens import TokenCounter
from ccproxy.validation import MAX_JSON_DEPTH
from tests.convert.test_request import MESSAGES


def _encode(body: dict[str, Any]) -> bytes:
    """As Claude Code writes a body (JSON.stringify: no spaces)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _turn(number: int) -> list[dict[str, Any]]:
    call = {"type": "tool_use", "id": f"toolu_t{number}", "name": "Bash", "input": {"command": f"ls {number}"}}
    result = {"type": "tool_result", "tool_use_id": f"toolu_t{number}", "content": f"file {number}"}
    return [{"role": "assistant", "content": [{"type": "text", "text": "Next."}, call]},
            {"role": "user", "content": [result]}]


def _as_sent(body: dict[str, Any]) -> bytes:
    """C{body} as Claude Code sends it: its last message's last block marked for prompt caching."""
    sent = copy.deepcopy(body)
    content = sent["messages"][-1]["content"]
    if isinstance(content, list) and content:
        content[-1]["cache_control"] = {"type": "ephemeral"}
    return _encode(sent)


def _claude_code_turns(turns: int) -> list[bytes]:
    """The bodies of a Claude Code session: the 48 KB benchmark request, then C{turns} more tool turns."""
    body = claude_code_request("claude-sonnet-4-5", stream=True)
    bodies = [_as_sent(body)]
    for number in range(turns):
        body["messages"] += _turn(number)
        bodies.append(_as_sent(body))
    return bodies


def assert_same(resent: Parts, raw: bytes) -> None:
    """What a resent body was split into is what decoding it whole gives, to the token count."""
    body = jsonio.loads(raw)
    whole = RequestParts().split(body)
    assert whole is not None
    assert resent.request == whole.request
    assert resent.texts == whole.texts
    counter = TokenCounter()
    assert counter.count_request(resent.counted, resent.texts) == counter.count_request(body)


def test_each_turn_of_a_session_is_split_by_its_bytes() -> None:
    memo = RequestParts()
    first, *later = _claude_code_turns(6)
    assert memo.split_resent(first) is None  # nothing to resend yet
    assert memo.split(jsonio.loads(first), first) is not None
    decoded = []
    for raw in later:
        match = memo._layouts.match(raw)
        assert match is not None
        decoded.append(len(match.values))
        parts = memo.split_resent(raw)
        assert parts is not None
        assert_same(parts, raw)
    # Each turn decodes its two new messages and the one that lost its mark (the benchmark's last
    # message keeps its own mark, so the first turn decodes two).
    assert decoded == [2, 3, 3, 3, 3, 3]
    assert len(memo._layouts) == 1  # each turn's layout replaced the one it resent


def test_a_retry_and_a_shorter_body_are_split_too() -> None:
    memo = RequestParts()
    raw = _claude_code_turns(3)[-1]
    memo.split(jsonio.loads(raw), raw)
    again = memo.split_resent(raw)
    assert again is not None
    assert_same(again, raw)
    body = jsonio.loads(raw)
    body["messages"] = body["messages"][:-1]  # the last message dropped: the one before ends the list
    shorter = _encode(body)
    parts = memo.split_resent(shorter)
    assert parts is not None
    assert_same(parts, shorter)


@pytest.mark.parametrize(
    "change",
    [
        lambda body: body.update(system=[{"type": "text", "text": "another system prompt"}]),
        lambda body: body["messages"][0]["content"][0].update(text="an edited first message"),
        lambda body: body.update(max_tokens=16000),  # as long as the 32000 it replaces
        lambda body: body["messages"].__delitem__(slice(0, 2)),
    ],
    ids=["system", "first message", "settings", "compacted"],
)
def test_a_body_that_changes_what_it_resends_is_decoded_whole(change: Any) -> None:
    memo = RequestParts()
    raw = _claude_code_turns(6)[-1]
    memo.split(jsonio.loads(raw), raw)
    body = jsonio.loads(raw)
    change(body)
    assert memo.split_resent(_encode(body)) is None


@pytest.mark.parametrize(
    "write",
    [
        lambda body: json.dumps(body, ensure_ascii=False).encode(),  # the Python SDK's spacing
        lambda body: json.dumps(body, separators=(",", ":")).encode(),  # "\u00e9" for "é"
        lambda body: b'{"model":"m",' + _encode(body)[1:],  # a repeated key ("model" comes again)
    ],
    ids=["spaced", "ascii", "repeated key"],
)
def test_only_a_body_written_as_orjson_writes_it_is_remembered(write: Any) -> None:
    memo = RequestParts()
    body = jsonio.loads(_claude_code_turns(1)[-1])
    body["messages"][0]["content"][1]["text"] += " (é ✓)"
    raw = write(body)
    assert memo.split(jsonio.loads(raw), raw) is not None
    assert len(memo._layouts) == 0
    canonical = _encode(body)
    assert memo.split(jsonio.loads(canonical), canonical) is not None
    assert len(memo._layouts) == 1


def test_new_messages_written_with_spaces_are_read_but_not_remembered() -> None:
    memo = RequestParts()
    first, second = _claude_code_turns(1)
    memo.split(jsonio.loads(first), first)
    layout = next(iter(memo._layouts._layouts))
    head_end = len(layout.head) + sum(map(len, layout.segments[:-1]))
    spaced = second[:head_end] + b", " + second[head_end + 1 :]  # a space after the comma
    parts = memo.split_resent(spaced)
    assert parts is not None
    assert_same(parts, spaced)
    assert list(memo._layouts._layouts) == [layout]  # this body has none: the one it resent stays


def test_a_body_with_a_repeated_messages_key_is_not_remembered() -> None:
    """Decoded, the second list wins; its encoding's length would fit the first list's place."""
    memo = RequestParts()
    raw = (b'{"model":"m","messages":[{"role":"user","content":"aaaa"}],'
           b'"messages":[{"role":"user","content":"bbbb"}],"max_tokens":5}')
    assert memo.split(jsonio.loads(raw), raw) is not None
    assert len(memo._layouts) == 0


@pytest.mark.parametrize(
    "between",
    [
        b'1{"role":"user","content":"x"}',  # no comma after the last message
        b",",  # a trailing comma
        b',{"role":"user","content":"x"}],"messages":[{"role":"user","content":"y"}',  # a list closed early
        b", ",
    ],
    ids=["no comma", "trailing comma", "closed early", "a space"],
)
def test_bytes_between_that_are_not_a_list_of_messages_are_decoded_whole(between: bytes) -> None:
    memo = RequestParts()
    raw = _claude_code_turns(1)[-1]
    memo.split(jsonio.loads(raw), raw)
    (layout,) = memo._layouts._layouts
    end = len(raw) - len(layout.suffix)
    assert memo.split_resent(raw[:end] + between + raw[end:]) is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    earlier=MESSAGES,
    later=MESSAGES,
    cut=st.integers(0, 8),
    noise=st.lists(st.sampled_from([b"]", b"[", b"}", b"{", b",", b'"', b"\\", b" ", b'"messages":[', b"]}", b"1", b""]),
                   max_size=3),
    at=st.integers(0, 10_000),
)
def test_property_a_resent_body_is_split_as_its_decoding_or_not_at_all(
    earlier: list[Any], later: list[Any], cut: int, noise: list[bytes], at: int
) -> None:
    """Whatever bytes stand between a remembered body's start and end (valid messages, broken ones,
    brackets that would close the list early), splitting by bytes gives what decoding the whole body
    gives, or nothing; never a body that does not decode, or decodes to something else."""
    memo = RequestParts()
    body = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": earlier, "system": "be brief"}
    raw = _encode(body)
    if memo.split(jsonio.loads(raw), raw) is None or not memo._layouts:
        return
    sent = _encode({**body, "messages": earlier[:cut] + later})
    start, end = len(b'{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":['), len(sent) - len(b'],"system":"be brief"}')
    where = start + at % (end - start + 1)
    for piece in noise:  # inserted there; an empty piece deletes the byte there instead
        sent = sent[:where] + piece + sent[where + (0 if piece else 1) :]
    parts = memo.split_resent(sent)
    event("split by its bytes" if parts is not None else "decoded whole")
    try:
        decoded = jsonio.loads(sent)
    except ValueError:
        assert parts is None
        return
    if parts is not None:
        whole = RequestParts().split(decoded)
        assert whole is not None and parts.request == whole.request and parts.texts == whole.texts


def test_the_layouts_are_bounded() -> None:
    layouts: Layouts[str] = Layouts(max_bytes=10_000, max_layouts=2)
    bodies = [_encode({"model": f"m{n}", "messages": [{"role": "user", "content": "x" * 1_000}]}) for n in range(3)]
    for raw in bodies:
        body = jsonio.loads(raw)
        layouts.remember(raw, body, [jsonio.dumps(m) for m in body["messages"]], ["part"], None)
    assert len(layouts) == 2 and layouts.match(bodies[0]) is None and layouts.match(bodies[2]) is not None
    big = _encode({"model": "m", "messages": [{"role": "user", "content": "x" * 20_000}]})
    layouts.remember(big, jsonio.loads(big), [jsonio.dumps(jsonio.loads(big)["messages"][0])], ["part"], None)
    assert layouts.match(big) is None  # larger than the bound: not kept


def test_a_layout_keeps_the_ends_of_its_last_messages() -> None:
    memo = RequestParts()
    raw = _claude_code_turns(4)[-1]
    memo.split(jsonio.loads(raw), raw)
    (layout,) = memo._layouts._layouts
    count = len(jsonio.loads(raw)["messages"])
    assert layout.first == count - KEEP and len(layout.segments) == KEEP
    assert raw == layout.head + b"".join(layout.segments) + layout.suffix
    assert layout.suffix.startswith(b"]") and layout.segments[0].startswith(b",")


def test_a_new_message_nested_too_deep_is_left_to_the_whole_body_check() -> None:
    """The whole body's decoding and check refuse it (RequestError over HTTP: a 400)."""
    memo = RequestParts()
    body = jsonio.loads(_claude_code_turns(1)[-1])
    raw = _encode(body)
    memo.split(jsonio.loads(raw), raw)
    deep: Any = "x"
    for _ in range(MAX_JSON_DEPTH):
        deep = {"a": deep}
    body["messages"].append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x",
                                                          "extra": deep}]})
    assert memo.split_resent(_encode(body)) is None
    with pytest.raises(RequestError, match="nest"):
        memo.split(jsonio.loads(_encode(body)))

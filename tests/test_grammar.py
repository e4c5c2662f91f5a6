"""Tests for L{ccproxy.grammar}: the Messages SSE grammar checker and the SDK-style accumulator."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from ccproxy.grammar import (
    GrammarError,
    StreamErrorEvent,
    StreamGrammar,
    check_events,
    final_message,
)

Event = tuple[str, dict[str, Any]]


def start(input_tokens: int = 10) -> Event:
    """A message_start as ccproxy sends it (B.6)."""
    return (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-opus-5-5",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": input_tokens,
                    "output_tokens": 1,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                },
            },
        },
    )


def ping() -> Event:
    return ("ping", {"type": "ping"})


def block_start(index: int, block: dict[str, Any]) -> Event:
    return ("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})


def text_start(index: int) -> Event:
    return block_start(index, {"type": "text", "text": ""})


def thinking_start(index: int) -> Event:
    return block_start(index, {"type": "thinking", "thinking": "", "signature": ""})


def tool_start(index: int, tool_id: str = "call_x", name: str = "Bash") -> Event:
    return block_start(index, {"type": "tool_use", "id": tool_id, "name": name, "input": {}})


def delta(index: int, body: dict[str, Any]) -> Event:
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": body})


def text(index: int, value: str) -> Event:
    return delta(index, {"type": "text_delta", "text": value})


def thinking(index: int, value: str) -> Event:
    return delta(index, {"type": "thinking_delta", "thinking": value})


def signature(index: int, value: str = "ccp1.abc") -> Event:
    return delta(index, {"type": "signature_delta", "signature": value})


def args(index: int, value: str) -> Event:
    return delta(index, {"type": "input_json_delta", "partial_json": value})


def stop(index: int) -> Event:
    return ("content_block_stop", {"type": "content_block_stop", "index": index})


def message_delta(stop_reason: Any = "end_turn", **usage: Any) -> Event:
    return (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": 42, **usage},
        },
    )


def message_stop() -> Event:
    return ("message_stop", {"type": "message_stop"})


def error(kind: str = "overloaded_error", message: str = "Overloaded") -> Event:
    return ("error", {"type": "error", "error": {"type": kind, "message": message}})


TEXT_STREAM = [
    start(),
    ping(),
    text_start(0),
    text(0, "Hello"),
    ping(),
    text(0, " world"),
    stop(0),
    message_delta("end_turn", input_tokens=1234, cache_read_input_tokens=5000),
    ping(),
    message_stop(),
]

THINKING_TOOL_STREAM = [
    start(),
    ping(),
    thinking_start(0),
    thinking(0, "Let me "),
    thinking(0, "run it."),
    signature(0),
    stop(0),
    tool_start(1),
    args(1, '{"command":'),
    args(1, ' "echo ok"}'),
    stop(1),
    message_delta("tool_use"),
    message_stop(),
]

PARALLEL_TOOLS_STREAM = [
    start(),
    text_start(0),
    text(0, "Running both."),
    stop(0),
    tool_start(1, "call_a", "Read"),
    args(1, ""),
    args(1, '{"path": "/tmp/a"}'),
    stop(1),
    tool_start(2, "toolu_01-B", "TodoList"),
    stop(2),
    message_delta("tool_use"),
    message_stop(),
]

ERROR_STREAM = [start(), ping(), text_start(0), text(0, "partial"), error("api_error", "upstream died")]


@pytest.mark.parametrize(
    "events",
    [
        TEXT_STREAM,
        THINKING_TOOL_STREAM,
        PARALLEL_TOOLS_STREAM,
        ERROR_STREAM,
        [error()],
        [start(), error()],
        [start(), block_start(0, {"type": "redacted_thinking", "data": "opaque"}), stop(0), text_start(1), stop(1),
         message_delta(), message_stop()],
        [start(), message_delta("max_tokens"), message_delta("max_tokens", input_tokens=None), message_stop()],
        [start(), thinking_start(0), signature(0), stop(0), message_delta("refusal"), message_stop()],
    ],
    ids=["text", "thinking-tool", "parallel-tools", "error-mid-stream", "error-first", "error-after-start",
         "redacted-thinking", "several-message-deltas", "signature-only-thinking"],
)
def test_valid_streams(events: list[Event]) -> None:
    """Streams that follow B.6 (pings anywhere, errors ending things early) pass."""
    check_events(events)


def test_incremental_feed_and_close() -> None:
    """L{StreamGrammar} accepts events one at a time and only judges the ending at L{StreamGrammar.close}."""
    grammar = StreamGrammar()
    for name, payload in TEXT_STREAM[:-1]:
        grammar.feed(name, payload)
    with pytest.raises(GrammarError, match="event 9 \\(end of stream\\): expected message_stop"):
        grammar.close()
    grammar.feed(*TEXT_STREAM[-1])
    grammar.close()


def _replace(event: Event, path: tuple[str, ...], value: Any) -> Event:
    """A deep copy of C{event} with the payload item at C{path} set to C{value} (or removed when C{value} is ...)."""
    name, payload = copy.deepcopy(event)
    target = payload
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return (name, payload)


TOOL_HEAD = [start(), tool_start(0)]
THINK_HEAD = [start(), thinking_start(0)]
TEXT_HEAD = [start(), text_start(0)]
END = [message_delta(), message_stop()]

BAD_STREAMS: list[tuple[str, list[Event], str]] = [
    # framing
    ("type-mismatch", [start(), ("ping", {"type": "pong"})], "event 1 (ping): expected payload type 'ping'"),
    ("unknown-event", [start(), ("message_pause", {"type": "message_pause"})], 
     "event 1 (message_pause): expected a known event name, got 'message_pause'"),
    ("payload-not-object", [start(), ("ping", ["ping"])],  # type: ignore[list-item]
     "event 1 (ping): expected payload to be an object, got ['ping']"),
    # message_start
    ("ping-first", [ping()], "event 0 (ping): expected message_start as the first event"),
    ("block-first", [text_start(0)], "message_start as the first event, got 'content_block_start'"),
    ("second-start", [start(), start()], "event 1 (message_start): expected message_start only as the first event"),
    ("role", [_replace(start(), ("message", "role"), "user")], "message.role == 'assistant', got 'user'"),
    ("message-type", [_replace(start(), ("message", "type"), "msg")], "message.type == 'message'"),
    ("content", [_replace(start(), ("message", "content"), [{"type": "text", "text": ""}])], "message.content == []"),
    ("stop-reason-set", [_replace(start(), ("message", "stop_reason"), "end_turn")], "message.stop_reason null"),
    ("stop-reason-missing", [_replace(start(), ("message", "stop_reason"), ...)], "got '<missing>'"),
    ("no-output-tokens", [_replace(start(), ("message", "usage", "output_tokens"), ...)],
     "message.usage.output_tokens to be an integer, got None"),
    ("input-tokens-str", [_replace(start(), ("message", "usage", "input_tokens"), "10")],
     "message.usage.input_tokens to be an integer, got '10'"),
    ("input-tokens-bool", [_replace(start(), ("message", "usage", "input_tokens"), True)], "integer, got True"),
    ("no-usage", [_replace(start(), ("message", "usage"), ...)], "message.usage to be an object"),
    # block order
    ("index-skip", [start(), text_start(1)], "event 1 (content_block_start): expected index 0, got 1"),
    ("index-reuse", [*TEXT_HEAD, stop(0), text_start(0)], "event 3 (content_block_start): expected index 1, got 0"),
    ("index-str", [start(), block_start("0", {"type": "text", "text": ""})],  # type: ignore[arg-type]
     "expected index 0, got '0'"),
    ("interleaved", [*TEXT_HEAD, tool_start(1)], "content_block_stop for block 0 before another block starts"),
    ("unknown-block", [start(), block_start(0, {"type": "server_tool_use"})], "content_block.type in"),
    ("text-start-not-str", [start(), block_start(0, {"type": "text"})], "text content_block.text to be a string"),
    ("block-after-delta", [start(), message_delta(), text_start(0)], "no content_block_start after message_delta"),
    # deltas
    ("delta-no-block", [start(), text(0, "x")], "event 1 (content_block_delta): expected an open content block"),
    ("delta-after-stop", [*TEXT_HEAD, stop(0), text(0, "x")], "an open content block"),
    ("delta-wrong-index", [*TEXT_HEAD, text(1, "x")], "event 2 (content_block_delta): expected index 0, got 1"),
    ("delta-wrong-kind", [*TEXT_HEAD, args(0, "{}")], "text_delta for text block 0, got 'input_json_delta'"),
    ("citations", [*TEXT_HEAD, delta(0, {"type": "citations_delta", "citation": {}})], "got 'citations_delta'"),
    ("text-delta-not-str", [*TEXT_HEAD, delta(0, {"type": "text_delta", "text": None})],
     "text_delta.text to be a string, got None"),
    ("thinking-gets-text", [*THINK_HEAD, text(0, "x")], "signature_delta or thinking_delta for thinking block 0"),
    ("redacted-delta", [start(), block_start(0, {"type": "redacted_thinking", "data": "d"}), thinking(0, "x")],
     "no deltas for redacted_thinking block 0"),
    # thinking signatures
    ("unsigned-thinking", [*THINK_HEAD, thinking(0, "hm"), stop(0)],
     "event 3 (content_block_stop): expected a signature_delta before thinking block 0 stops"),
    ("empty-signature", [*THINK_HEAD, signature(0, "")], "a non-empty signature for thinking block 0"),
    ("two-signatures", [*THINK_HEAD, signature(0), signature(0)], "signature_delta as the last delta"),
    ("thinking-after-signature", [*THINK_HEAD, signature(0), thinking(0, "more")],
     "signature_delta as the last delta of thinking block 0, got thinking_delta after it"),
    # tool_use
    ("tool-id-dot", [start(), tool_start(0, tool_id="call.1")], "tool_use id matching ^[a-zA-Z0-9_-]+$, got 'call.1'"),
    ("tool-id-empty", [start(), tool_start(0, tool_id="")], "tool_use id matching"),
    ("tool-name-empty", [start(), tool_start(0, name="")], "a non-empty tool_use name"),
    ("tool-input-set", [start(), _replace(tool_start(0), ("content_block", "input"), {"a": 1})],
     "tool_use input == {} (arguments come as input_json_delta), got {'a': 1}"),
    ("tool-input-missing", [start(), _replace(tool_start(0), ("content_block", "input"), ...)],
     "tool_use input == {} (arguments come as input_json_delta), got None"),
    ("tool-json-broken", [*TOOL_HEAD, args(0, '{"command": "ec'), stop(0)],
     "event 3 (content_block_stop): expected tool_use block 0 input to parse as JSON"),
    ("tool-json-array", [*TOOL_HEAD, args(0, "[1]"), stop(0)], "tool_use block 0 input to be a JSON object, got '[1]'"),
    ("tool-json-null", [*TOOL_HEAD, args(0, "null"), stop(0)], "input to be a JSON object"),
    ("partial-json-not-str", [*TOOL_HEAD, delta(0, {"type": "input_json_delta", "partial_json": {}})],
     "input_json_delta.partial_json to be a string"),
    # content_block_stop
    ("stop-no-block", [start(), stop(0)], "event 1 (content_block_stop): expected an open content block"),
    ("stop-wrong-index", [*TEXT_HEAD, stop(1)], "expected index 0, got 1"),
    # message_delta / message_stop
    ("delta-with-open-block", [*TEXT_HEAD, message_delta()], "content_block_stop for block 0 before message_delta"),
    ("bad-stop-reason", [start(), message_delta("tool_calls")], "delta.stop_reason in ['end_turn'"),
    ("null-stop-reason", [start(), message_delta(None)], "delta.stop_reason in ['end_turn'"),
    ("no-usage-output", [start(), _replace(message_delta(), ("usage", "output_tokens"), ...)],
     "usage.output_tokens to be an integer"),
    ("usage-float", [start(), message_delta(input_tokens=1.5)], "usage.input_tokens to be an integer, got 1.5"),
    ("stop-sequence-int", [start(), _replace(message_delta(), ("delta", "stop_sequence"), 3)],
     "delta.stop_sequence to be a string"),
    ("stop-without-delta", [start(), message_stop()], "at least one message_delta before message_stop"),
    ("stop-with-open-block", [*TEXT_HEAD, message_stop()], "text block 0 is still open"),
    # endings
    ("after-stop", [start(), *END, ping()], "event 3 (ping): expected nothing after message_stop, got 'ping'"),
    ("after-error", [start(), error(), message_stop()], "expected nothing after an error event, got 'message_stop'"),
    ("error-malformed", [start(), ("error", {"type": "error", "error": {"type": "api_error"}})],
     "error.message to be a string"),
    ("empty", [], "event 0 (end of stream): expected message_start, got an empty stream"),
    ("cut-in-block", [*TEXT_HEAD, text(0, "x")],
     "event 3 (end of stream): expected message_delta and message_stop (or an error event) before the body ended; "
     "text block 0 is still open"),
    ("cut-after-blocks", [*TEXT_HEAD, stop(0)], "message_delta and message_stop"),
    ("cut-after-delta", [start(), message_delta()], "expected message_stop (or an error event)"),
]


@pytest.mark.parametrize(("events", "message"), [b[1:] for b in BAD_STREAMS], ids=[b[0] for b in BAD_STREAMS])
def test_invalid_streams(events: list[Event], message: str) -> None:
    """Each rule has a stream that breaks it, and the error says where and what."""
    with pytest.raises(GrammarError) as info:
        check_events(events)
    assert message in str(info.value)


def test_grammar_error_is_value_error() -> None:
    """Callers that only know about ValueError still catch grammar failures."""
    assert issubclass(GrammarError, ValueError)


def test_final_message_text() -> None:
    """Text deltas concatenate; message_delta sets the stop reason and overwrites the usage fields it carries."""
    assert final_message(TEXT_STREAM) == {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-opus-5-5",
        "content": [{"type": "text", "text": "Hello world"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 1234,
            "output_tokens": 42,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 5000,
        },
    }


def test_final_message_thinking_and_tools() -> None:
    """Thinking text and signature accumulate; tool input is parsed from the joined fragments."""
    message = final_message(THINKING_TOOL_STREAM)
    assert message["content"] == [
        {"type": "thinking", "thinking": "Let me run it.", "signature": "ccp1.abc"},
        {"type": "tool_use", "id": "call_x", "name": "Bash", "input": {"command": "echo ok"}},
    ]
    assert message["stop_reason"] == "tool_use"
    assert message["usage"]["input_tokens"] == 10


def test_final_message_parallel_tools() -> None:
    """A tool call without argument deltas keeps the C{{}} from its start, as the SDK does."""
    assert final_message(PARALLEL_TOOLS_STREAM)["content"] == [
        {"type": "text", "text": "Running both."},
        {"type": "tool_use", "id": "call_a", "name": "Read", "input": {"path": "/tmp/a"}},
        {"type": "tool_use", "id": "toolu_01-B", "name": "TodoList", "input": {}},
    ]


def test_final_message_last_delta_wins() -> None:
    """With several message_delta events the last one's values stand; null usage fields are ignored."""
    events = [start(), message_delta("max_tokens", input_tokens=7), message_delta("end_turn", input_tokens=None),
              message_stop()]
    message = final_message(events)
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["input_tokens"] == 7
    assert message["content"] == []


def test_final_message_leaves_events_alone() -> None:
    """Accumulating does not mutate the events, so the same list can be checked or replayed again."""
    events = copy.deepcopy(THINKING_TOOL_STREAM)
    final_message(events)
    assert events == THINKING_TOOL_STREAM


def test_final_message_error_event() -> None:
    """An error event surfaces as L{StreamErrorEvent} carrying the error object, not as a grammar failure."""
    with pytest.raises(StreamErrorEvent) as info:
        final_message(ERROR_STREAM)
    assert info.value.error == {"type": "api_error", "message": "upstream died"}
    assert "api_error: upstream died" in str(info.value)


def test_final_message_checks_grammar() -> None:
    """A malformed or truncated stream is rejected rather than half-accumulated."""
    with pytest.raises(GrammarError, match="expected index 0, got 1"):
        final_message([start(), text_start(1)])
    with pytest.raises(GrammarError, match="end of stream"):
        final_message(TEXT_STREAM[:-1])


@pytest.mark.parametrize("stream", ["TEXT_STREAM", "THINKING_TOOL_STREAM", "PARALLEL_TOOLS_STREAM"])
def test_final_message_unchecked_and_consuming_builds_the_same_message(stream: str) -> None:
    """The non-streaming response's fast path (no grammar pass, no copies) gives the same message."""

    events = globals()[stream]
    assert final_message(copy.deepcopy(events), keep_events=False, checked=False) == final_message(events)


def test_message_sink_answers_500_when_assembly_fails() -> None:
    """A converter bug that breaks assembly is a clean Anthropic 500, not an unhandled error."""
    from twisted.web.test.requesthelper import DummyRequest

    from ccproxy.web.sinks import MessageSink

    request = DummyRequest([b""])
    sink = MessageSink(request, "req_1")
    sink.events([("content_block_delta", {"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "text_delta", "text": "x"}}),
                 ("content_block_stop", {"type": "content_block_stop", "index": 0})])
    sink.end()
    assert request.responseCode == 500
    assert json.loads(b"".join(request.written))["error"]["type"] == "api_error"

# -*- test-case-name: tests.test_grammar -*-
"""
Checker for Anthropic Messages SSE event sequences (PROTOCOL.md B.5 and B.6).

Claude Code's SDK trusts the stream: it indexes blocks by C{index}, concatenates deltas without checking them and treats
a body that stops before C{message_stop} as a dropped connection.  So every stream ccproxy converts is run through
L{check_events} in the tests, and through L{StreamGrammar} event by event in debug mode.  Pure: no Twisted, no I/O.

An event is a C{(name, payload)} pair: the SSE C{event:} name and the parsed JSON of its C{data:} line.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal, NoReturn, TypeGuard

from attrs import define, field

__all__ = ["STOP_REASONS", "GrammarError", "StreamErrorEvent", "StreamGrammar", "check_events", "final_message"]

STOP_REASONS = frozenset(
    {"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal", "model_context_window_exceeded"}
)
"""The GA C{stop_reason} values (B.3); beta values such as C{compaction} are never emitted by ccproxy."""

# Which delta types each block kind accepts; citations_delta is absent because ccproxy never emits it.
_DELTAS: Mapping[str, frozenset[str]] = {
    "text": frozenset({"text_delta"}), "thinking": frozenset({"thinking_delta", "signature_delta"}),
    "tool_use": frozenset({"input_json_delta"}), "redacted_thinking": frozenset(),
}
# The string fields each block start and each delta must carry.
_START_FIELDS = {"text": ("text",), "thinking": ("thinking", "signature"), "redacted_thinking": ("data",),
                 "tool_use": ("id", "name")}
_DELTA_FIELDS = {"text_delta": "text", "thinking_delta": "thinking", "signature_delta": "signature",
                 "input_json_delta": "partial_json"}
_EVENTS = frozenset(
    {"message_start", "ping", "content_block_start", "content_block_delta", "content_block_stop", "message_delta",
     "message_stop", "error"}
)
_TOOL_ID = re.compile(r"[a-zA-Z0-9_-]+")
# Optional message_delta.usage counters: when present they overwrite message_start's numbers, so they must be ints.
_OPTIONAL_COUNTS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")

_Phase = Literal["start", "blocks", "closing", "ended"]


class GrammarError(ValueError):
    """
    An event sequence broke the streaming grammar.  The message names the event's position (0-based, as in the list
    given to L{check_events}), what was expected there and what came instead.
    """


class StreamErrorEvent(Exception):
    """L{final_message} met an C{error} event: a well-formed stream with no message.  C{.error} is its error object."""

    def __init__(self, error: Mapping[str, Any]) -> None:
        super().__init__(f"stream ended with {error.get('type')}: {error.get('message')}")
        self.error = dict(error)


def _show(value: object) -> str:
    """Short repr for error messages, so a huge payload does not bury the rule that failed."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_int(value: object) -> TypeGuard[int]:
    """JSON integer check; C{bool} is an C{int} subclass in Python but not a number on the wire."""
    return isinstance(value, int) and not isinstance(value, bool)


@define(eq=False)
class _OpenBlock:
    """The block between its start and stop, with what its stop has to check."""

    index: int
    kind: str
    json_parts: list[str] = field(factory=list)
    signed: bool = False


@define(eq=False)
class StreamGrammar:
    """Incremental checker: L{feed} each event in order, then L{close} at the end of the body; one per stream."""

    _seen: int = field(default=0, init=False)
    _name: str = field(default="", init=False)
    _phase: _Phase = field(default="start", init=False)
    _ended_by: str = field(default="", init=False)
    _next_index: int = field(default=0, init=False)
    _open: _OpenBlock | None = field(default=None, init=False)

    def feed(self, name: str, payload: Mapping[str, Any]) -> None:
        """Check one event against the ones before it; raise L{GrammarError} if it is malformed or misplaced."""
        self._name = name
        data = self._obj(payload, "payload")
        if self._phase == "ended":
            self._fail(f"nothing after {self._ended_by}, got {name!r}")
        if name not in _EVENTS:
            self._fail(f"a known event name, got {name!r}")
        if data.get("type") != name:
            self._fail(f"payload type {name!r} (must equal the event name), got {_show(data.get('type'))}")
        if self._phase == "start" and name not in ("message_start", "error"):
            self._fail(f"message_start as the first event, got {name!r}")
        getattr(self, f"_on_{name}")(data)
        self._seen += 1

    def close(self) -> None:
        """Raise L{GrammarError} unless C{message_stop} or C{error} ended the stream: CC sees other ends as drops."""
        self._name = "end of stream"
        if self._phase == "ended":
            return
        if self._phase == "start":
            self._fail("message_start, got an empty stream")
        missing = "message_stop" if self._phase == "closing" else "message_delta and message_stop"
        self._fail(f"{missing} (or an error event) before the body ended{self._open_note()}")

    def _on_error(self, data: Mapping[str, Any]) -> None:
        error = self._obj(data.get("error"), "error")
        self._str(error, "type", "error")
        self._str(error, "message", "error")
        self._end("an error event")

    def _on_ping(self, data: Mapping[str, Any]) -> None:
        pass

    def _on_message_stop(self, data: Mapping[str, Any]) -> None:
        if self._phase != "closing":
            self._fail(f"at least one message_delta before message_stop{self._open_note()}")
        self._end("message_stop")

    def _on_message_start(self, data: Mapping[str, Any]) -> None:
        if self._phase != "start":
            self._fail("message_start only as the first event, got a second one")
        message = self._obj(data.get("message"), "message")
        for key, want in (("type", "message"), ("role", "assistant")):
            if message.get(key) != want:
                self._fail(f"message.{key} == {want!r}, got {_show(message.get(key))}")
        self._str(message, "id", "message")
        self._str(message, "model", "message")
        if message.get("content") != [] or not isinstance(message.get("content"), list):
            self._fail(f"message.content == [], got {_show(message.get('content'))}")
        if message.get("stop_reason", "<missing>") is not None:
            self._fail(f"message.stop_reason null, got {_show(message.get('stop_reason', '<missing>'))}")
        usage = self._obj(message.get("usage"), "message.usage")
        self._int(usage, "input_tokens", "message.usage")
        self._int(usage, "output_tokens", "message.usage")
        self._phase = "blocks"

    def _on_content_block_start(self, data: Mapping[str, Any]) -> None:
        if self._phase == "closing":
            self._fail("no content_block_start after message_delta")
        if self._open is not None:
            self._fail(f"content_block_stop for block {self._open.index} before another block starts")
        index = self._index(data, self._next_index)
        block = self._obj(data.get("content_block"), "content_block")
        kind = block.get("type")
        if not isinstance(kind, str) or kind not in _DELTAS:
            self._fail(f"content_block.type in {sorted(_DELTAS)}, got {_show(kind)}")
        for key in _START_FIELDS[kind]:
            self._str(block, key, f"{kind} content_block")
        if kind == "tool_use":
            if not _TOOL_ID.fullmatch(block["id"]):
                self._fail(f"tool_use id matching ^[a-zA-Z0-9_-]+$, got {_show(block['id'])}")
            if not block["name"]:
                self._fail("a non-empty tool_use name, got ''")
            if block.get("input") != {} or not isinstance(block.get("input"), Mapping):
                got = _show(block.get("input"))
                self._fail(f"tool_use input == {{}} (arguments come as input_json_delta), got {got}")
        self._open = _OpenBlock(index, kind)
        self._next_index += 1

    def _on_content_block_delta(self, data: Mapping[str, Any]) -> None:
        block = self._require_open()
        self._index(data, block.index)
        delta = self._obj(data.get("delta"), "delta")
        kind = delta.get("type")
        allowed = _DELTAS[block.kind]
        if kind not in allowed:
            want = " or ".join(sorted(allowed)) if allowed else "no deltas"
            self._fail(f"{want} for {block.kind} block {block.index}, got {_show(kind)}")
        if block.signed:
            self._fail(f"signature_delta as the last delta of thinking block {block.index}, got {kind} after it")
        value = self._str(delta, _DELTA_FIELDS[kind], kind)
        if kind == "signature_delta":
            if not value:
                self._fail(f"a non-empty signature for thinking block {block.index}, got ''")
            block.signed = True
        elif kind == "input_json_delta":
            block.json_parts.append(value)

    def _on_content_block_stop(self, data: Mapping[str, Any]) -> None:
        block = self._require_open()
        self._index(data, block.index)
        if block.kind == "thinking" and not block.signed:
            self._fail(f"a signature_delta before thinking block {block.index} stops, got none")
        text = "".join(block.json_parts)
        if text:
            try:
                parsed = json.loads(text)
            except ValueError as e:
                self._fail(f"tool_use block {block.index} input to parse as JSON, got {_show(text)} ({e})")
            if not isinstance(parsed, dict):
                self._fail(f"tool_use block {block.index} input to be a JSON object, got {_show(text)}")
        self._open = None

    def _on_message_delta(self, data: Mapping[str, Any]) -> None:
        if self._open is not None:
            self._fail(f"content_block_stop for block {self._open.index} before message_delta")
        delta = self._obj(data.get("delta"), "delta")
        if delta.get("stop_reason") not in STOP_REASONS:
            self._fail(f"delta.stop_reason in {sorted(STOP_REASONS)}, got {_show(delta.get('stop_reason'))}")
        if delta.get("stop_sequence") is not None:
            self._str(delta, "stop_sequence", "delta")
        usage = self._obj(data.get("usage"), "usage")
        self._int(usage, "output_tokens", "usage")
        for key in _OPTIONAL_COUNTS:
            if usage.get(key) is not None:
                self._int(usage, key, "usage")
        self._phase = "closing"

    def _end(self, by: str) -> None:
        self._phase, self._ended_by = "ended", by

    def _require_open(self) -> _OpenBlock:
        if self._open is None:
            self._fail("an open content block (after content_block_start), got none open")
        return self._open

    def _open_note(self) -> str:
        if self._open is None:
            return ""
        return f"; {self._open.kind} block {self._open.index} is still open"

    def _fail(self, what: str) -> NoReturn:
        raise GrammarError(f"event {self._seen} ({self._name}): expected {what}")

    def _obj(self, value: object, where: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):  # JSON objects; far cheaper to check than the Mapping ABC
            self._fail(f"{where} to be an object, got {_show(value)}")
        return value

    def _str(self, parent: Mapping[str, Any], key: str, where: str) -> str:
        value = parent.get(key)
        if not isinstance(value, str):
            self._fail(f"{where}.{key} to be a string, got {_show(value)}")
        return value

    def _int(self, parent: Mapping[str, Any], key: str, where: str) -> int:
        value = parent.get(key)
        if not _is_int(value):
            self._fail(f"{where}.{key} to be an integer, got {_show(value)}")
        return value

    def _index(self, data: Mapping[str, Any], want: int) -> int:
        index = data.get("index")
        if not _is_int(index) or index != want:
            self._fail(f"index {want}, got {_show(index)}")
        return want


def _same(value: Any) -> Any:
    return value



def check_events(events: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
    """Check a whole stream and its ending; raise L{GrammarError} at the first event that breaks the grammar."""
    grammar = StreamGrammar()
    for name, payload in events:
        grammar.feed(name, payload)
    grammar.close()


def final_message(
    events: Iterable[tuple[str, Mapping[str, Any]]], *, keep_events: bool = True, checked: bool = True
) -> dict[str, Any]:
    """
    Build the final Message from a stream as the official SDKs do, so tests can compare a converted stream with the
    non-streaming answer to the same upstream reply.  The events are checked on the way.

    @param keep_events: leave the events unmodified (copy what the message takes from them). A caller that drops
        the events afterwards (the non-streaming response) passes C{False} and saves the copies.
    @param checked: check the events against the grammar on the way. The non-streaming response passes C{False}:
        its events come from the converter, whose output the tests check on every stream, and which debug mode
        checks at run time (as for streaming responses).

    @raise GrammarError: if the stream is malformed.
    @raise StreamErrorEvent: if an C{error} event cut the stream short (the SDK raises there too).
    """
    grammar = StreamGrammar() if checked else None
    copied = copy.deepcopy if keep_events else _same
    message: dict[str, Any] = {}
    json_buffers: dict[int, str] = {}
    # Text and thinking arrive in thousands of small deltas: collect them and join once
    # per block (appending to a string in a dict copies it every time).
    pieces: dict[int, tuple[str, list[str]]] = {}
    for name, payload in events:
        if grammar is not None:
            grammar.feed(name, payload)
        if name == "error":
            raise StreamErrorEvent(payload["error"])
        if name == "message_start":
            message = copied(dict(payload["message"]))
        elif name == "content_block_start":
            message["content"].append(copied(dict(payload["content_block"])))
        elif name == "content_block_delta":
            index, delta = payload["index"], payload["delta"]
            key = _DELTA_FIELDS[delta["type"]]
            if delta["type"] == "input_json_delta":
                json_buffers[index] = json_buffers.get(index, "") + delta[key]
            elif delta["type"] == "signature_delta":  # replaces, as in the SDK
                message["content"][index][key] = delta[key]
            else:
                pieces.setdefault(index, (key, []))[1].append(delta[key])
        elif name == "content_block_stop":
            index = payload["index"]
            if index in pieces:
                key, parts = pieces.pop(index)
                message["content"][index][key] += "".join(parts)
            if json_buffers.get(index):
                # An empty buffer keeps the start's {}: the SDK only parses when it has bytes.
                message["content"][index]["input"] = json.loads(json_buffers[index])
        elif name == "message_delta":
            delta = payload["delta"]
            message["stop_reason"] = delta["stop_reason"]
            message["stop_sequence"] = delta.get("stop_sequence")
            if "stop_details" in delta:
                message["stop_details"] = copied(delta["stop_details"])
            usage = message.setdefault("usage", {})
            for key, value in payload["usage"].items():
                if value is not None:
                    usage[key] = copied(value)
    if grammar is not None:
        grammar.close()
    return message

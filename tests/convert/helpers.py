"""Shared helpers for the conversion tests: fixtures, and upstream bytes run through the converter as the relay does."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ccproxy.anthropic import MessagesRequest
from ccproxy.convert.carrier import decode_carrier
from ccproxy.convert.names import ToolIdMap, ToolNameMap
from ccproxy.convert.request import Conversion, convert_request
from ccproxy.convert.response import completion_to_chunk
from ccproxy.convert.stream import Event, StreamConverter
from ccproxy.errors import ApiError
from ccproxy.openai import ChatMessage
from ccproxy.providers import PROFILES
from ccproxy.sse import SSEError, SSEParser
from ccproxy.validation import parse_messages_request

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CLIENT_MODEL = "claude-opus-5-5"
MESSAGE_ID = "msg_01TestStreamConverter0001"


# Fixtures


def anthropic_body(name: str) -> dict[str, Any]:
    """A recorded (or hand-built) Claude Code request body from C{fixtures/anthropic/}."""
    body: dict[str, Any] = json.loads((FIXTURES / "anthropic" / name).read_text(encoding="utf-8"))
    return body


def anthropic_request(name: str) -> MessagesRequest:
    """The validated request model of an Anthropic fixture."""
    return parse_messages_request(anthropic_body(name))


def upstream_bytes(name: str) -> bytes:
    """The exact bytes of an upstream SSE transcript from C{fixtures/openai/}."""
    return (FIXTURES / "openai" / name).read_bytes()


def upstream_json(name: str) -> Any:
    """A decoded non-streaming upstream completion from C{fixtures/openai/}."""
    return json.loads((FIXTURES / "openai" / name).read_text(encoding="utf-8"))


# Request side


def convert(body: Mapping[str, Any] | str, profile: str = "openrouter", model: str = "test/model") -> Conversion:
    """Validate and convert a request body (or the Anthropic fixture of that name) for C{profile}."""
    data = anthropic_body(body) if isinstance(body, str) else dict(body)
    return convert_request(parse_messages_request(data), model, PROFILES[profile])


def assert_openai_valid(messages: list[ChatMessage]) -> None:
    """
    Check what OpenAI validates in a message list (PROTOCOL.md E.2): every assistant C{tool_calls} id is answered by
    the C{tool} messages right after it, in call order, and there is no C{tool} message anywhere else; assistant
    messages carry content or calls; tool messages are text; images and files only appear in user messages.
    """
    assert messages, "an empty messages list"
    position = 0
    while position < len(messages):
        message = messages[position]
        assert message.role != "tool", f"message {position}: a tool message that answers no call"
        if message.role == "assistant":
            assert message.content or message.tool_calls, f"message {position}: assistant without content or calls"
        if message.role in ("system", "developer"):
            assert isinstance(message.content, str) and message.content, f"message {position}: empty system text"
        if message.role == "user":
            assert message.content, f"message {position}: an empty user message"
        elif isinstance(message.content, list):
            kinds = {part.type for part in message.content}
            assert kinds <= {"text"}, f"message {position}: {message.role} message with {kinds}"
        position += 1
        if message.role != "assistant" or not message.tool_calls:
            continue
        for call in message.tool_calls:
            arguments = json.loads(call.function.arguments)
            assert isinstance(arguments, dict), f"arguments must be an object: {call.function.arguments!r}"
            assert position < len(messages), f"call {call.id} is never answered"
            answer = messages[position]
            assert answer.role == "tool", f"call {call.id} answered by a {answer.role} message"
            assert answer.tool_call_id == call.id, f"call {call.id} answered by {answer.tool_call_id}"
            assert isinstance(answer.content, str), f"tool message {call.id} is not text"
            position += 1


# Response side


def make_converter(
    profile: str = "openrouter",
    upstream_model: str = "test/model",
    names: ToolNameMap | None = None,
    ids: ToolIdMap | None = None,
    input_estimate: int = 1000,
) -> StreamConverter:
    """A converter set up as the exchange does, with a fixed message id."""
    return StreamConverter(
        model=CLIENT_MODEL,
        message_id=MESSAGE_ID,
        upstream_model=upstream_model,
        profile=profile,
        names=names or ToolNameMap.from_names([]),
        ids=ids or ToolIdMap(),
        input_estimate=input_estimate,
        provider="upstream.test",
    )


def run_stream(pieces: bytes | Iterable[bytes], converter: StreamConverter | None = None) -> list[Event]:
    """
    Feed upstream bytes (one piece or several reads) through L{SSEParser} and the converter, as the relay does:
    C{[DONE]} is noted, not decoded; other data is JSON; a payload that is not JSON or an SSE framing error ends the
    stream with an error; reading stops once the converter has ended; the end of the body closes the parser and
    finishes the converter.
    """
    converter = converter or make_converter()
    parser = SSEParser()
    events = converter.start()
    done = False

    def handle(data: str) -> bool:
        nonlocal done
        if data == "[DONE]":
            done = True
            return True
        try:
            chunk = json.loads(data)
        except ValueError:
            events.extend(converter.fail(ApiError(502, "api_error", f"upstream.test: not a JSON chunk: {data[:120]!r}")))
            return False
        events.extend(converter.feed(chunk))
        return not converter.ended

    for piece in [pieces] if isinstance(pieces, bytes) else pieces:
        if converter.ended:
            break
        try:
            payloads = [sse.data for sse in parser.feed(piece)]
        except SSEError as error:
            events.extend(converter.fail(ApiError(502, "api_error", f"upstream.test: {error}")))
            break
        for data in payloads:
            if not handle(data):
                break
    if not converter.ended:
        for sse in parser.close():
            handle(sse.data)
        events.extend(converter.finish(done))
    return events


def run_completion(completion: Any, converter: StreamConverter | None = None) -> list[Event]:
    """A non-streaming completion converted as the relay does: one chunk, then a clean end."""
    converter = converter or make_converter()
    events = converter.start()
    events.extend(converter.feed(completion_to_chunk(completion)))
    events.extend(converter.finish(True))
    return events


def decoded_signatures(message: dict[str, Any]) -> dict[str, Any]:
    """A final message with each carrier signature decoded, so equal carriers compare equal whatever their key order."""
    result = dict(message)
    result["content"] = [
        {**block, "signature": decode_carrier(block["signature"])} if block.get("type") == "thinking" else block
        for block in message["content"]
    ]
    return result

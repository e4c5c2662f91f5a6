"""The official anthropic SDK as a real client of ccproxy (called from a thread)."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from tests.fake_upstream import Reply, chunk, text_reply, tool_call_reply, usage_chunk
from tests.web.test_integration import BASH_TOOL


def client(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="test-key", max_retries=0, timeout=20)


def create(url: str, **kwargs: Any) -> Any:
    return client(url).messages.create(
        model="claude-opus-5-5", max_tokens=1024, messages=[{"role": "user", "content": "hi"}], **kwargs
    )


def stream_final(url: str, **kwargs: Any) -> tuple[Any, list[str]]:
    kinds = []
    with client(url).messages.stream(
        model="claude-opus-5-5", max_tokens=1024, messages=[{"role": "user", "content": "hi"}], **kwargs
    ) as stream:
        for event in stream:
            kinds.append(event.type)
        return stream.get_final_message(), kinds


@pytest_twisted.ensureDeferred
async def test_sdk_create_text(harness: Any) -> None:
    """messages.create returns the upstream text as a Message."""
    url = harness.start([text_reply("Hello from upstream")])
    message = await deferToThread(create, url)
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello from upstream"
    assert message.stop_reason == "end_turn"
    assert message.model == "claude-opus-5-5"
    assert message.usage.input_tokens == 100 and message.usage.output_tokens == 20


@pytest_twisted.ensureDeferred
async def test_sdk_stream_text(harness: Any) -> None:
    """messages.stream accumulates the converted stream into the same text."""
    url = harness.start([text_reply("Streaming works fine", pieces=6)])
    message, kinds = await deferToThread(stream_final, url)
    assert message.content[0].text == "Streaming works fine"
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "text" in kinds  # the SDK's own text events fired


@pytest_twisted.ensureDeferred
async def test_sdk_stream_tool_call_in_small_fragments(harness: Any) -> None:
    """A tool call streamed in 30 argument fragments arrives as one tool_use with its input."""
    arguments = json.dumps({"command": "grep -rn 'TODO' src/ | head -50", "description": "Find TODOs"})
    url = harness.start([tool_call_reply("Bash", arguments, "call_frag", fragments=30)])
    message, _ = await deferToThread(stream_final, url, tools=[BASH_TOOL])
    assert message.stop_reason == "tool_use"
    [block] = message.content
    assert block.type == "tool_use" and block.id == "call_frag" and block.name == "Bash"
    assert block.input == json.loads(arguments)


@pytest_twisted.ensureDeferred
async def test_sdk_stream_equals_create(harness: Any) -> None:
    """Streaming and non-streaming give the same final message for one transcript."""
    chunks: list[Any] = [
        chunk({"role": "assistant", "reasoning_content": "Let me think."}),
        chunk({"content": "I'll list files."}),
        chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": '{"command":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"ls"}'}}]}),
        chunk({}, "tool_calls"),
        usage_chunk(200, 30, cached=150),
    ]
    url = harness.start([Reply(chunks=list(chunks)), Reply(chunks=list(chunks))])
    streamed, _ = await deferToThread(stream_final, url, tools=[BASH_TOOL])
    created = await deferToThread(create, url, tools=[BASH_TOOL])
    drop_id = {"id"}
    assert streamed.model_dump(exclude=drop_id) == created.model_dump(exclude=drop_id)
    assert [b.type for b in created.content] == ["thinking", "text", "tool_use"]
    assert created.content[0].signature.startswith("ccp1.")
    assert created.usage.cache_read_input_tokens == 150 and created.usage.input_tokens == 50


@pytest_twisted.ensureDeferred
async def test_sdk_raises_rate_limit_error_for_upstream_429(harness: Any) -> None:
    """An upstream 429 surfaces in the SDK as RateLimitError."""
    url = harness.start([Reply(status=429, body={"error": {"message": "slow down"}}, headers={"retry-after": "45"})])
    with pytest.raises(anthropic.RateLimitError) as raised:
        await deferToThread(create, url)
    assert raised.value.response.headers["retry-after"] == "45"

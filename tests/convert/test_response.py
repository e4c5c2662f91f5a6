"""
Tests for L{ccproxy.convert.response}: non-streaming completions read as one chunk (PROTOCOL.md H.5; H.11 item 17).

Each JSON completion in C{fixtures/openai/} says what its C{.sse} twin streams; both must give the client the same
message, since Claude Code falls back to a non-streaming request when a stream fails.
"""

from __future__ import annotations

from typing import Any

import pytest

from ccproxy.convert.response import completion_to_chunk
from ccproxy.grammar import StreamErrorEvent, check_events, final_message
from tests.convert.helpers import (
    CLIENT_MODEL,
    decoded_signatures,
    run_completion,
    run_stream,
    upstream_bytes,
    upstream_json,
)

PAIRS = ["openai_text", "openai_parallel_tools", "openrouter_reasoning_tool", "deepseek_reasoning", "ollama_tool_calls",
         "gemini_indexless_tools", "vllm_gateway_length"]


def completion(message: dict[str, Any], finish: str | None = "stop", usage: Any = None) -> dict[str, Any]:
    """A C{chat.completion} with one choice."""
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}], "usage": usage}


def answer(data: Any) -> dict[str, Any]:
    """The final message for a completion (grammar-checked on the way)."""
    events = run_completion(data)
    check_events(events)
    return final_message(events)


@pytest.mark.parametrize("name", PAIRS)
def test_h11_17_completion_equals_its_stream(name: str) -> None:
    """The non-streaming completion gives the same message as the stream of the same answer, carriers included."""
    streamed = final_message(run_stream(upstream_bytes(f"{name}.sse")))
    completed = answer(upstream_json(f"{name}.json"))
    assert decoded_signatures(completed) == decoded_signatures(streamed)


def test_h5_block_order_thinking_text_tools() -> None:
    """Thinking, then text, then one tool_use per call, whatever order the message's fields come in (H.5)."""
    data = completion({"tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": "{}"}}],
                       "content": "Running it.", "reasoning_content": "plan"}, "tool_calls")
    result = answer(data)
    assert [b["type"] for b in result["content"]] == ["thinking", "text", "tool_use"]
    assert (result["stop_reason"], result["model"]) == ("tool_use", CLIENT_MODEL)


def test_h5_refusal_is_text() -> None:
    """C{message.refusal} is shown as text after any content."""
    result = answer(completion({"content": None, "refusal": "I can't help with that."}))
    assert result["content"] == [{"type": "text", "text": "I can't help with that."}]


def test_h5_empty_answer_when_reasoning_ate_the_budget() -> None:
    """No content and C{length}: an empty content list with C{max_tokens} (H.5 empty result)."""
    result = answer(completion({"content": ""}, "length", {"prompt_tokens": 50, "completion_tokens": 4096}))
    assert result["content"] == []
    assert result["stop_reason"] == "max_tokens"
    assert result["usage"]["output_tokens"] == 4096


def test_h5_missing_finish_reason_is_a_normal_end() -> None:
    """A completion with no finish reason ends the turn normally (H.7 null)."""
    assert answer(completion({"content": "hi"}, None))["stop_reason"] == "end_turn"


def test_h5_usage_mapping() -> None:
    """Usage goes through the H.8 mapping, as for streams."""
    usage = {"prompt_tokens": 100, "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 64}}
    assert answer(completion({"content": "hi"}, usage=usage))["usage"] == {
        "input_tokens": 36, "output_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 64}


def test_h5_tool_calls_get_indexes() -> None:
    """Calls of a completion have no index: each gets its own, so two calls never merge."""
    data = completion({"tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "Read", "arguments": "{\"file_path\":\"/a\"}"}},
        {"id": "call_2", "type": "function", "function": {"name": "Read", "arguments": "{\"file_path\":\"/b\"}"}}]},
        "tool_calls")
    chunk = completion_to_chunk(data)
    assert [c["index"] for c in chunk["choices"][0]["delta"]["tool_calls"]] == [0, 1]
    assert [b["input"] for b in answer(data)["content"]] == [{"file_path": "/a"}, {"file_path": "/b"}]


def test_h5_completion_is_not_changed() -> None:
    """Reading a completion leaves the decoded object as it was."""
    data = upstream_json("openai_parallel_tools.json")
    before = repr(data)
    completion_to_chunk(data)
    assert repr(data) == before


def test_h5_error_body_becomes_an_error() -> None:
    """An OpenRouter error object delivered as the body is the client's error (rate limit here)."""
    events = run_completion(upstream_json("openrouter_error.json"))
    check_events(events)
    with pytest.raises(StreamErrorEvent) as failed:
        final_message(events)
    assert failed.value.error["type"] == "rate_limit_error"
    assert "temporarily rate-limited" in failed.value.error["message"]


@pytest.mark.parametrize("data", [[], "text", 3, None])
def test_h5_non_object_body_is_an_error(data: Any) -> None:
    """A JSON body that is not an object is an api_error, not a crash."""
    events = run_completion(data)
    check_events(events)
    assert events[-1][0] == "error"


@pytest.mark.parametrize("data", [{}, {"choices": []}, {"choices": [None]}, {"choices": "x"}])
def test_h5_no_usable_choice_is_an_empty_answer(data: Any) -> None:
    """Without a usable choice the answer is empty and ends normally."""
    result = answer(data)
    assert result["content"] == [] and result["stop_reason"] == "end_turn"

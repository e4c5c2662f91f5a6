"""Each provider's recorded-shape streams convert, with that provider's profile, into valid Anthropic streams.

Quirks covered by the transcripts (see C{tests/fixtures/README.md}): DeepSeek usage on the finish chunk
and keep-alive comments, Groq usage only under C{x_groq}, Mistral's call and finish in one chunk, Gemini's
index-less calls with a thought signature, OpenRouter's signed C{reasoning_details}, Ollama's complete
calls, llama.cpp's C{timings}.
"""

from __future__ import annotations

from typing import Any

import pytest

from ccproxy.convert.carrier import decode_carrier
from ccproxy.grammar import check_events, final_message
from tests.convert.helpers import (
    decoded_signatures,
    make_converter,
    run_completion,
    run_stream,
    upstream_json,
)
from tests.providers.dialects import DIALECTS, FIXTURES, GEMINI_SIGNATURE

STREAMS = [(provider, stream) for provider, dialect in sorted(DIALECTS.items()) for stream in dialect.streams]


def converted(provider: str, stream: str) -> dict[str, Any]:
    """The final message of C{stream} converted for C{provider}, after the grammar check."""
    dialect = DIALECTS[provider]
    events = run_stream((FIXTURES / stream).read_bytes(), make_converter(provider, dialect.model))
    check_events(events)
    message: dict[str, Any] = final_message(events)
    for block in message["content"]:
        if block["type"] == "thinking":
            carrier = decode_carrier(block["signature"])
            assert carrier is not None and (carrier.profile, carrier.model) == (provider, dialect.model)
    return message


@pytest.mark.parametrize(("provider", "stream"), STREAMS)
def test_provider_stream_is_a_valid_anthropic_stream(provider: str, stream: str) -> None:
    """Every transcript of every provider passes the event grammar and ends normally."""
    message = converted(provider, stream)
    assert message["stop_reason"] in ("end_turn", "tool_use", "max_tokens")
    assert message["usage"]["input_tokens"] > 0 and message["usage"]["output_tokens"] > 0


@pytest.mark.parametrize("provider", sorted(DIALECTS))
def test_tool_turn_gives_a_tool_call(provider: str) -> None:
    """Turn 1 of the multi-turn tests: each provider's stream yields at least one tool call."""
    message = converted(provider, DIALECTS[provider].turn)
    assert message["stop_reason"] == "tool_use"
    assert any(block["type"] == "tool_use" for block in message["content"])


def test_gemini_signature_travels_in_an_empty_thinking_block_before_its_call() -> None:
    """A signed Gemini call without reasoning text gets an empty thinking block carrying the signature (H.6 step 5)."""
    content = converted("gemini", "openai/gemini_indexless_tools.sse")["content"]
    assert [block["type"] for block in content] == ["text", "thinking", "tool_use", "tool_use"]
    assert content[1]["thinking"] == ""
    carrier = decode_carrier(content[1]["signature"])
    assert carrier is not None and carrier.kind == "gs"
    assert carrier.signatures == {content[2]["id"]: GEMINI_SIGNATURE}


def test_gemini_non_streaming_answer_equals_its_stream() -> None:
    """The non-streaming twin (Claude Code's fallback path) carries the same signature block."""
    streamed = final_message(run_stream((FIXTURES / "openai/gemini_indexless_tools.sse").read_bytes(),
                                        make_converter("gemini", "gemini-3-pro-preview")))
    completed = final_message(run_completion(upstream_json("gemini_indexless_tools.json"),
                                             make_converter("gemini", "gemini-3-pro-preview")))
    assert decoded_signatures(completed) == decoded_signatures(streamed)


def test_other_profiles_keep_no_gemini_signatures() -> None:
    """The same stream under a profile that cannot replay signatures gets no extra thinking block."""
    events = run_stream((FIXTURES / "openai/gemini_indexless_tools.sse").read_bytes(), make_converter("generic"))
    assert [block["type"] for block in final_message(events)["content"]] == ["text", "tool_use", "tool_use"]


def test_groq_usage_under_x_groq_is_read() -> None:
    """Groq's usage arrives only under C{x_groq}: it is the usage reported, not an estimate."""
    usage = converted("groq", "groq/groq_tool_turn.sse")["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (1893, 61)


def test_mistral_call_and_finish_in_one_chunk() -> None:
    """Mistral sends its call, the finish and the usage in one chunk: the call is kept, with its 9-character id."""
    message = converted("mistral", "mistral/mistral_tool_turn.sse")
    assert [block["type"] for block in message["content"]] == ["text", "tool_use"]
    assert message["content"][1]["id"] == "D681PevKs"
    assert message["usage"]["output_tokens"] == 46


def test_deepseek_reasoning_then_call_with_usage_on_the_finish_chunk() -> None:
    """DeepSeek: thinking from C{reasoning_content}, then the call; cache hits come from the finish chunk."""
    message = converted("deepseek", "deepseek/deepseek_tool_turn.sse")
    assert message["content"][0] == {"type": "thinking",
                                     "thinking": "The SSE test fails on CRLF input. Run it first to see the assertion.",
                                     "signature": message["content"][0]["signature"]}
    assert message["content"][1]["input"] == {"command": "pytest -q tests/test_sse.py",
                                              "description": "Run the SSE tests"}
    assert message["usage"]["cache_read_input_tokens"] == 1920

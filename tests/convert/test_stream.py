"""
Tests for L{ccproxy.convert.stream}: upstream chunk streams as Anthropic events (PROTOCOL.md H.3, H.6-H.8; H.11
items 6-12).

Every transcript in C{fixtures/openai/*.sse} goes through the SSE parser and the converter as the relay runs them;
the events must pass the grammar checker and build the expected final message.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccproxy.convert.arguments import RAW_KEY
from ccproxy.convert.carrier import Carrier, decode_carrier, text_hash
from ccproxy.convert.names import MISTRAL_ID, ToolIdMap, ToolNameMap, upstream_tool_name
from ccproxy.convert.stream import TRUNCATED, Event, StreamConverter
from ccproxy.grammar import StreamErrorEvent, check_events, final_message
from tests.convert.helpers import (
    CLIENT_MODEL,
    MESSAGE_ID,
    make_converter,
    run_stream,
    upstream_bytes,
)

MCP_NAME = "mcp__claude_ai_Atlassian_Cloud__getConfluencePageDescendantsWithFullHierarchy"


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    """One upstream chunk with a single choice."""
    data: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk",
                            "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}]}
    data.update(extra)
    return data


def call(index: int | None = None, call_id: str | None = None, name: str | None = None,
         arguments: str | None = None) -> dict[str, Any]:
    """One C{tool_calls} fragment; C{None} fields are left out."""
    fragment: dict[str, Any] = {"type": "function", "function": {}}
    if index is not None:
        fragment["index"] = index
    if call_id is not None:
        fragment["id"] = call_id
    if name is not None:
        fragment["function"]["name"] = name
    if arguments is not None:
        fragment["function"]["arguments"] = arguments
    return fragment


def calls(*fragments: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return chunk({"tool_calls": list(fragments)}, finish)


def convert(chunks: list[Any], done: bool = True, converter: StreamConverter | None = None) -> list[Event]:
    """All events for C{chunks}: start, each chunk, finish."""
    converter = converter or make_converter()
    events = converter.start()
    for item in chunks:
        events.extend(converter.feed(item))
    events.extend(converter.finish(done))
    return events


def message(chunks: list[Any], done: bool = True, converter: StreamConverter | None = None) -> dict[str, Any]:
    """The final message the client builds from the converted stream (grammar-checked)."""
    events = convert(chunks, done, converter)
    check_events(events)
    return final_message(events)


def error_of(events: list[Event]) -> dict[str, Any]:
    """The error a well-formed stream ended with."""
    check_events(events)
    with pytest.raises(StreamErrorEvent) as failed:
        final_message(events)
    return failed.value.error


def tool_uses(result: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(b["id"], b["name"], b["input"]) for b in result["content"] if b["type"] == "tool_use"]


def kinds(result: dict[str, Any]) -> list[str]:
    return [b["type"] for b in result["content"]]


# Transcripts


CARRIER = re.compile(r"ccp1\.[A-Za-z0-9_-]+")

TRANSCRIPTS: dict[str, dict[str, Any]] = {
    "openai_text.sse": {
        "content": [{"type": "text", "text": "The proxy keeps a naïve client happy — streaming works ✓ 🙂."}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 814, "output_tokens": 412, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 17920, "output_tokens_details": {"thinking_tokens": 384}},
    },
    "openai_parallel_tools.sse": {
        "content": [
            {"type": "text", "text": "I'll read the file and grep for markers."},
            {"type": "tool_use", "id": "call_Qw3rTy7UiOp1AsDf5GhJk9Lz", "name": "Read",
             "input": {"file_path": "/repo/src/app.py", "limit": 200}},
            {"type": "tool_use", "id": "call_Zx8cVb2NmQw4ErTy6UiOp0As", "name": "Bash",
             "input": {"command": 'grep -n "TODO" src/app.py', "description": "Find TODO markers"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 144, "output_tokens": 96, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 19968},
    },
    "openrouter_reasoning_tool.sse": {
        "content": [
            {"type": "thinking", "thinking": "The user wants the test suite run before any change. I'll use Bash."},
            {"type": "text", "text": "I'll run the tests first."},
            {"type": "tool_use", "id": "toolu_vrtx_01KqR8mXnP3sT5wYz7Ab9Cd", "name": "Bash",
             "input": {"command": "pytest -q tests/convert", "description": "Run the conversion tests"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 51, "output_tokens": 187, "cache_creation_input_tokens": 3584,
                  "cache_read_input_tokens": 17408, "output_tokens_details": {"thinking_tokens": 61}},
    },
    "deepseek_reasoning.sse": {
        "content": [
            {"type": "thinking", "thinking": "The failing test expects CRLF to be accepted. The parser splits only on \\n."},
            {"type": "text", "text": "The parser now normalises `\\r\\n` and `\\r` before splitting."},
        ],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 51, "output_tokens": 310, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 1152, "output_tokens_details": {"thinking_tokens": 245}},
    },
    "ollama_tool_calls.sse": {
        "content": [
            {"type": "thinking", "thinking": "Okay, the user wants the Python files and the TODOs."},
            {"type": "tool_use", "id": "call_k2x9ab3d", "name": "Bash",
             "input": {"command": "find . -name '*.py'", "description": "List Python files"}},
            {"type": "tool_use", "id": "call_m4p0qq7z", "name": "Read", "input": {"file_path": "/repo/TODO.md"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 4096, "output_tokens": 57, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    },
    "gemini_indexless_tools.sse": {
        "content": [
            {"type": "text", "text": "I'll check both config files."},
            {"type": "tool_use", "id": "function-call-14412785331744236880", "name": "Read",
             "input": {"file_path": "/repo/setup.cfg"}},
            {"type": "tool_use", "id": "function-call-5520976312918847112", "name": "Read",
             "input": {"file_path": "/repo/pyproject.toml"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 928, "output_tokens": 38, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 8192, "output_tokens_details": {"thinking_tokens": 52}},
    },
    "vllm_gateway_length.sse": {
        "content": [{"type": "thinking", "thinking": "Need to enumerate every SSE edge case first"}],
        "stop_reason": "max_tokens",
        "usage": {"input_tokens": 2311, "output_tokens": 512, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    },
}
FAILING_TRANSCRIPTS = {
    "openai_truncated.sse": ("api_error", f"upstream.test: {TRUNCATED}"),
    "openrouter_midstream_error.sse": ("api_error", "upstream.test: Provider returned error"),
}
ALL_TRANSCRIPTS = sorted(TRANSCRIPTS) + sorted(FAILING_TRANSCRIPTS)


def without_signatures(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Content blocks with thinking signatures checked (a carrier for this converter) and then removed."""
    blocks = []
    for block in result["content"]:
        if block["type"] == "thinking":
            block = dict(block)
            carrier = decode_carrier(block.pop("signature"))
            assert carrier is not None
            assert (carrier.profile, carrier.model) == ("openrouter", "test/model")
            assert carrier.text_hash == text_hash(block["thinking"])
        blocks.append(block)
    return blocks


@pytest.mark.parametrize("name", sorted(TRANSCRIPTS))
def test_transcript_final_message(name: str) -> None:
    """Each recorded-shape upstream stream converts into a valid event stream with the expected message."""
    events = run_stream(upstream_bytes(name))
    check_events(events)
    result = final_message(events)
    expected = TRANSCRIPTS[name]
    assert without_signatures(result) == expected["content"]
    assert result["stop_reason"] == expected["stop_reason"]
    assert result["usage"] == expected["usage"]
    assert (result["id"], result["model"], result["stop_sequence"]) == (MESSAGE_ID, CLIENT_MODEL, None)


@pytest.mark.parametrize("name", sorted(FAILING_TRANSCRIPTS))
def test_transcript_ends_in_an_error_event(name: str) -> None:
    """A cut stream and an OpenRouter mid-stream error end with an error event after the partial text (H.6 7-8)."""
    events = run_stream(upstream_bytes(name))
    assert [n for n, _ in events].count("content_block_start") == 1
    assert events[-1][0] == "error"
    error = error_of(events)
    assert (error["type"], error["message"]) == FAILING_TRANSCRIPTS[name]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(ALL_TRANSCRIPTS), data=st.data())
def test_h11_11_any_split_of_the_bytes_gives_the_same_events(name: str, data: st.DataObject) -> None:
    """TCP may cut the body anywhere (inside CRLF, inside UTF-8, inside JSON): the events do not change."""
    raw = upstream_bytes(name)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=40), label="cuts"))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)])]
    assert run_stream(pieces) == run_stream(raw)


def test_h11_11_byte_at_a_time() -> None:
    """The worst split of all, one byte per read, on the CRLF transcript."""
    raw = upstream_bytes("gemini_indexless_tools.sse")
    assert run_stream([raw[i : i + 1] for i in range(len(raw))]) == run_stream(raw)


def test_h11_11_transcripts_use_the_awkward_framings() -> None:
    """The fixtures really contain what H.11 item 11 lists, so the tests above cover it."""
    assert b": OPENROUTER PROCESSING\n\n" in upstream_bytes("openrouter_reasoning_tool.sse")
    assert b"\r\n\r\n" in upstream_bytes("gemini_indexless_tools.sse")
    gateway = upstream_bytes("vllm_gateway_length.sse")
    assert b"\ndata:{" in gateway and b"event: message\n" in gateway and b"\n\n\n\n" in gateway
    assert b"[DONE]" not in upstream_bytes("openai_truncated.sse")
    assert b'"finish_reason":"error"' in upstream_bytes("openrouter_midstream_error.sse")
    assert b'"choices":[]' in upstream_bytes("openai_text.sse")


# H.6 steps 2-4: start, reasoning, text


def test_h6_2_message_start_then_ping() -> None:
    """The stream opens with message_start (client model, input estimate, null stop reason) and a ping (H.11 item 12)."""
    events = make_converter(input_estimate=4321).start()
    assert [name for name, _ in events] == ["message_start", "ping"]
    started = events[0][1]["message"]
    assert (started["model"], started["stop_reason"], started["usage"]["input_tokens"]) == (CLIENT_MODEL, None, 4321)


def test_h6_4_reasoning_then_text_closes_thinking_with_carrier() -> None:
    """Reasoning becomes a thinking block closed by one carrier signature before the text starts."""
    events = convert([chunk({"reasoning_content": "think"}), chunk({"reasoning_content": "ing"}),
                      chunk({"content": "answer"}), chunk(finish="stop")])
    check_events(events)
    names = [(n, p.get("delta", {}).get("type")) for n, p in events]
    signature_at = names.index(("content_block_delta", "signature_delta"))
    assert names[signature_at + 1] == ("content_block_stop", None)
    result = final_message(events)
    assert kinds(result) == ["thinking", "text"]
    carrier = decode_carrier(result["content"][0]["signature"])
    assert carrier == Carrier(profile="openrouter", model="test/model", kind="rc", text_hash=text_hash("thinking"))
    assert CARRIER.fullmatch(result["content"][0]["signature"])


def test_h6_4_reasoning_field_names() -> None:
    """C{reasoning_content} (DeepSeek), C{reasoning} (Ollama, OpenRouter, vLLM) and details all make thinking."""
    for delta in ({"reasoning_content": "a"}, {"reasoning": "a"},
                  {"reasoning_details": [{"type": "reasoning.summary", "summary": "a", "index": 0}]}):
        assert message([chunk(delta), chunk(finish="stop")])["content"][0]["thinking"] == "a"


def test_h6_4_reasoning_details_are_merged_into_the_carrier() -> None:
    """
    Streamed C{reasoning.text} fragments merge into one detail, whose signature arrives last, as OpenRouter wants
    them back; encrypted details are kept as they are.
    """
    fragments = [{"type": "reasoning.text", "text": "a", "format": "anthropic-claude-v1", "index": 0},
                 {"type": "reasoning.text", "text": "b", "format": "anthropic-claude-v1", "index": 0},
                 {"type": "reasoning.text", "signature": "sig", "format": "anthropic-claude-v1", "index": 0},
                 {"type": "reasoning.encrypted", "data": "opaque", "format": "anthropic-claude-v1", "index": 1}]
    result = message([chunk({"reasoning": d.get("text", ""), "reasoning_details": [d]}) for d in fragments]
                     + [chunk({"content": "ok"}, "stop")])
    assert result["content"][0]["thinking"] == "ab"
    carrier = decode_carrier(result["content"][0]["signature"])
    assert carrier is not None and carrier.kind == "rd"
    assert carrier.details == [
        {"type": "reasoning.text", "text": "ab", "format": "anthropic-claude-v1", "index": 0, "signature": "sig"},
        {"type": "reasoning.encrypted", "data": "opaque", "format": "anthropic-claude-v1", "index": 1}]


def test_h6_4_details_of_different_reasoning_items_stay_apart() -> None:
    """Text details with different indexes are different reasoning items, each with its own signature."""
    details = [{"type": "reasoning.text", "text": "a", "signature": "s0", "index": 0},
               {"type": "reasoning.text", "text": "b", "signature": "s1", "index": 1}]
    result = message([chunk({"reasoning_details": details}), chunk({"content": "ok"}, "stop")])
    carrier = decode_carrier(result["content"][0]["signature"])
    assert carrier is not None and carrier.details == details


def test_h6_4_lone_surrogate_survives_the_carrier() -> None:
    """JSON may carry a lone surrogate (half an emoji): thinking with one still gets a carrier that decodes."""
    detail = {"type": "reasoning.text", "text": "half \ud83d", "index": 0}
    result = message([chunk({"reasoning": "half \ud83d", "reasoning_details": [detail]}), chunk({"content": "ok"}, "stop")])
    assert result["content"][0]["thinking"] == "half \ud83d"
    carrier = decode_carrier(result["content"][0]["signature"])
    assert carrier is not None and carrier.details == [detail]
    assert error_of(convert([{"error": {"message": "bad \udc80 byte"}}]))["type"] == "api_error"


def test_h6_4_encrypted_reasoning_alone_gives_an_empty_signed_thinking_block() -> None:
    """Opaque reasoning with no text still yields a thinking block (empty text, carrier signature)."""
    result = message([chunk({"reasoning_details": [{"type": "reasoning.encrypted", "data": "x"}]}),
                      chunk({"content": "hi"}, "stop")])
    assert result["content"][0]["thinking"] == ""
    assert decode_carrier(result["content"][0]["signature"]) is not None


def test_h6_4_redacted_placeholder_is_not_shown() -> None:
    """OpenRouter's C{[REDACTED]} placeholder is not thinking text."""
    result = message([chunk({"reasoning": "[REDACTED]"}), chunk({"content": "hi"}, "stop")])
    assert result["content"][0]["thinking"] == ""


def test_h6_4_refusal_is_text() -> None:
    """C{delta.refusal} is shown like content."""
    assert message([chunk({"refusal": "I can't help with that."}), chunk(finish="stop")])["content"] == [
        {"type": "text", "text": "I can't help with that."}]


def test_h6_4_empty_and_null_fields_open_nothing() -> None:
    """Role-only, empty-content and null fields (every provider's first chunk) open no block."""
    result = message([chunk({"role": "assistant", "content": "", "refusal": None, "reasoning_content": None,
                             "tool_calls": None}), chunk({"content": None}), chunk(finish="stop")])
    assert result["content"] == [] and result["stop_reason"] == "end_turn"


def test_h6_4_only_the_first_choice_counts() -> None:
    """Other choices (n > 1) are ignored."""
    data = chunk({"content": "first"})
    data["choices"].append({"index": 1, "delta": {"content": "second"}, "finish_reason": None})
    assert message([data, chunk(finish="stop")])["content"] == [{"type": "text", "text": "first"}]


# H.6 steps 4-5 and H.3: tool calls


def test_h6_5_a_call_is_emitted_when_the_next_one_starts() -> None:
    """Buffered calls go out as soon as they are complete, not at the end of the stream."""
    converter = make_converter()
    converter.start()
    assert converter.feed(calls(call(0, "call_a", "Read", '{"file_path":"/a"}'))) == []
    emitted = converter.feed(calls(call(1, "call_b", "Read", "")))
    assert [name for name, _ in emitted] == ["content_block_start", "content_block_delta", "content_block_stop"]
    assert emitted[0][1]["content_block"]["id"] == "call_a"


@pytest.mark.parametrize("count", [2, 3, 5])
def test_h11_8_parallel_calls(count: int) -> None:
    """2-5 parallel calls, streamed interleaved with their fragments, come out in order with their inputs."""
    chunks = []
    for n in range(count):
        chunks.append(calls(call(n, f"call_{n}", "Read", "")))
        chunks.append(calls(call(n, arguments='{"file_path":')))
        chunks.append(calls(call(n, arguments=f'"/f{n}"}}')))
    result = message([*chunks, chunk(finish="tool_calls")])
    assert tool_uses(result) == [(f"call_{n}", "Read", {"file_path": f"/f{n}"}) for n in range(count)]
    assert result["stop_reason"] == "tool_use"


def test_h11_8_fragments_of_parallel_calls_interleaved_across_chunks() -> None:
    """A provider that alternates between parallel calls mid-arguments (0, 1, 0, 1) loses no
    fragment: a call that is not whole yet waits, and the calls keep their order."""
    chunks = [
        calls(call(0, "call_a", "Read", '{"file_')),
        calls(call(1, "call_b", "Bash", '{"comm')),
        calls(call(0, arguments='path":"/a"}')),
        calls(call(1, arguments='and":"ls"}')),
        chunk(finish="tool_calls"),
    ]
    result = message(chunks)
    assert tool_uses(result) == [("call_a", "Read", {"file_path": "/a"}), ("call_b", "Bash", {"command": "ls"})]


def test_h11_8_a_whole_call_still_goes_out_when_the_next_one_starts() -> None:
    """The usual order (each call's fragments together) emits a call as soon as the next starts;
    one whose arguments never complete is repaired at the end, before the calls after it."""
    converter = make_converter()
    converter.start()
    assert converter.feed(calls(call(0, "call_a", "Read", '{"file_path":"/a"}'))) == []
    assert [e for e, _ in converter.feed(calls(call(1, "call_b", "Bash", '{"command":"l')))] == [
        "content_block_start", "content_block_delta", "content_block_stop"]
    assert converter.feed(calls(call(2, "call_c", "Read", '{"file_path":"/c"}'))) == []  # call_b is not whole
    events = converter.feed(chunk(finish="tool_calls")) + converter.finish(True)
    starts = [p["content_block"]["id"] for e, p in events if e == "content_block_start"]
    assert starts == ["call_b", "call_c"]


def test_h11_8_text_before_and_after_calls_and_reasoning_after_a_call() -> None:
    """Blocks keep their upstream order: text, call, reasoning, text, call."""
    result = message([chunk({"content": "First."}), calls(call(0, "call_a", "Read", "{}")),
                      chunk({"reasoning_content": "Now the second."}), chunk({"content": "Then."}),
                      calls(call(1, "call_b", "Bash", '{"command":"ls"}')), chunk(finish="tool_calls")])
    assert kinds(result) == ["text", "tool_use", "thinking", "text", "tool_use"]
    assert tool_uses(result)[1] == ("call_b", "Bash", {"command": "ls"})


def test_h11_7_complete_calls_in_one_delta() -> None:
    """Ollama-style: several whole calls in one delta."""
    result = message([calls(call(0, "call_a", "Read", '{"file_path":"/a"}'), call(1, "call_b", "Bash", '{"command":"ls"}')),
                      chunk(finish="tool_calls")])
    assert tool_uses(result) == [("call_a", "Read", {"file_path": "/a"}), ("call_b", "Bash", {"command": "ls"})]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ([""], {}),
        (["{}"], {}),
        (None, {}),
        (['{"command":', '"ls"}'], {"command": "ls"}),
        (['"{\\"command\\":\\"ls\\"}"'], {"command": "ls"}),
        (['{"command":"ls"'], {"command": "ls"}),
        (["not json"], {RAW_KEY: "not json"}),
        (["[1, 2]"], {"value": [1, 2]}),
    ],
)
def test_h11_7_argument_forms(arguments: list[str] | None, expected: dict[str, Any]) -> None:
    """Empty, C{{}}, missing, fragmented, double-encoded, truncated, invalid and non-object arguments (H.3)."""
    chunks = [calls(call(0, "call_a", "Bash"))]
    chunks += [calls(call(0, arguments=part)) for part in arguments or []]
    result = message([*chunks, chunk(finish="tool_calls")])
    assert tool_uses(result) == [("call_a", "Bash", expected)]


def test_h11_7_empty_arguments_send_no_delta() -> None:
    """A call without arguments has C{input: {}} and no input_json_delta (the SDK reads an empty buffer as {})."""
    events = convert([calls(call(0, "call_a", "ListAgents", "")), chunk(finish="tool_calls")])
    assert not [p for n, p in events if n == "content_block_delta"]


def test_h11_7_object_arguments_are_accepted() -> None:
    """Some servers send C{arguments} as an object rather than a JSON string."""
    fragment = call(0, "call_a", "Bash")
    fragment["function"]["arguments"] = {"command": "ls"}
    assert tool_uses(message([calls(fragment), chunk(finish="tool_calls")])) == [("call_a", "Bash", {"command": "ls"})]


def test_h11_7_concatenated_objects_split_into_calls() -> None:
    """C{{…}{…}} on one call (a gateway bug) becomes two calls; the second gets a minted id."""
    result = message([calls(call(0, "call_a", "Read", '{"file_path":"/a"}{"file_path":"/b"}')), chunk(finish="tool_calls")])
    uses = tool_uses(result)
    assert [(name, data) for _, name, data in uses] == [("Read", {"file_path": "/a"}), ("Read", {"file_path": "/b"})]
    assert uses[0][0] == "call_a" and re.fullmatch(r"toolu_[A-Za-z0-9]{24}", uses[1][0])


def test_h11_7_arguments_before_the_name() -> None:
    """Arguments may arrive before the id and name of their call (indexed and index-less)."""
    indexed = message([calls(call(0, arguments='{"a":1}')), calls(call(0, "call_a", "Bash")), chunk(finish="tool_calls")])
    assert tool_uses(indexed) == [("call_a", "Bash", {"a": 1})]
    indexless = message([calls(call(arguments='{"a":1}')), calls(call(None, "call_a", "Bash")),
                         chunk(finish="tool_calls")])
    assert tool_uses(indexless) == [("call_a", "Bash", {"a": 1})]


def test_h11_7_indexless_deltas_continue_the_last_call() -> None:
    """Gemini: no index; a fragment with neither id nor name continues the call before it."""
    result = message([calls(call(None, "fc-1", "Read", '{"file_path":')), calls(call(arguments='"/a"}')),
                      calls(call(None, "fc-2", "Read", '{"file_path":"/b"}')), chunk(finish="stop")])
    assert tool_uses(result) == [("fc-1", "Read", {"file_path": "/a"}), ("fc-2", "Read", {"file_path": "/b"})]


def test_h11_7_indexless_calls_without_ids_are_told_apart_by_name() -> None:
    """Gemini with empty ids: a new name after a complete call starts a new call, which keeps its own name."""
    result = message([calls(call(None, "", "Read", '{"file_path":"/a"}')),
                      calls(call(None, "", "Bash", '{"command":"ls"}')), chunk(finish="stop")])
    assert [(name, data) for _, name, data in tool_uses(result)] == [("Read", {"file_path": "/a"}),
                                                                     ("Bash", {"command": "ls"})]
    assert result["stop_reason"] == "tool_use"


def test_h6_4_index_reused_for_a_new_call_keeps_its_arguments() -> None:
    """A gateway that numbers every call 0: the second call's later fragments stay with the second call."""
    result = message([calls(call(0, "call_a", "Read", "")), calls(call(0, arguments='{"file_path":"/a"}')),
                      calls(call(0, "call_b", "Bash", "")), calls(call(0, arguments='{"command":"ls"}')),
                      chunk(finish="tool_calls")])
    assert tool_uses(result) == [("call_a", "Read", {"file_path": "/a"}), ("call_b", "Bash", {"command": "ls"})]


def test_h6_4_same_index_new_name_after_complete_arguments_is_a_new_call() -> None:
    """A name arriving for an index whose arguments are already whole starts another call (H.6 step 4)."""
    result = message([calls(call(0, "call_a", "Read", '{"file_path":"/a"}')), calls(call(0, None, "Read", '{"file_path":"/b"}')),
                      chunk(finish="tool_calls")])
    assert [data for _, _, data in tool_uses(result)] == [{"file_path": "/a"}, {"file_path": "/b"}]


@pytest.mark.parametrize(
    ("upstream_id", "pattern"),
    [(None, r"toolu_[A-Za-z0-9]{24}"), ("", r"toolu_[A-Za-z0-9]{24}"), ("functions.Bash:0", r"functions_Bash_0_[a-z2-7]{6}"),
     ("call.1", r"call_1_[a-z2-7]{6}")],
)
def test_h11_6_upstream_ids_are_made_valid(upstream_id: str | None, pattern: str) -> None:
    """Missing, empty and C{:}/C{.} ids become valid tool_use ids."""
    result = message([calls(call(0, upstream_id, "Bash", "{}")), chunk(finish="tool_calls")])
    assert re.fullmatch(pattern, tool_uses(result)[0][0])


def test_h11_6_duplicate_upstream_ids_are_suffixed() -> None:
    """Two calls with the same id in one answer get distinct ids."""
    result = message([calls(call(0, "call_1", "Read", "{}")), calls(call(1, "call_1", "Read", "{}")),
                      chunk(finish="tool_calls")])
    assert [i for i, _, _ in tool_uses(result)] == ["call_1", "call_1_2"]


def test_h11_6_mapped_ids_and_names_are_reversed() -> None:
    """A Mistral id we mapped, and a long MCP name we shortened, come back as the client's own."""
    ids = ToolIdMap(MISTRAL_ID)
    upstream_id = ids.to_upstream("toolu_01A8kzMLw3jQ3xDuQHw9gWb4")
    names = ToolNameMap.from_names([MCP_NAME])
    converter = make_converter(names=names, ids=ids)
    result = message([calls(call(0, upstream_id, upstream_tool_name(MCP_NAME), "{}")), chunk(finish="tool_calls")],
                     converter=converter)
    assert tool_uses(result) == [("toolu_01A8kzMLw3jQ3xDuQHw9gWb4", MCP_NAME, {})]


def test_h3_call_without_a_name_is_still_emitted() -> None:
    """A call whose name never came is emitted under a placeholder name, so nothing is lost silently."""
    assert tool_uses(message([calls(call(0, "call_a", None, "{}")), chunk(finish="tool_calls")]))[0][1] == "unknown_tool"


# H.7 stop reasons


@pytest.mark.parametrize(
    ("chunks", "stop", "blocks"),
    [
        ([chunk({"content": "hi"}, "stop")], "end_turn", ["text"]),
        ([calls(call(0, "c", "Bash", "{}")), chunk(finish="stop")], "tool_use", ["tool_use"]),
        ([chunk({"reasoning_content": "long"}), chunk(finish="length")], "max_tokens", ["thinking"]),
        ([chunk(finish="length")], "max_tokens", []),
        ([chunk({"content": "Here is how to"}), chunk(finish="content_filter")], "refusal", ["text"]),
        ([chunk({"content": "hi"}, "tool_calls")], "end_turn", ["text"]),
        ([chunk({"content": "hi"}, "function_call")], "end_turn", ["text"]),
        ([chunk({"content": "hi"}, "eos")], "end_turn", ["text"]),
        ([chunk({"content": "hi"}, "model_context_window_exceeded")], "model_context_window_exceeded", ["text"]),
        ([chunk({"content": "hi"})], "end_turn", ["text"]),
    ],
)
def test_h11_9_stop_reasons(chunks: list[Any], stop: str, blocks: list[str]) -> None:
    """H.7: stop, tools with stop, length (empty too), content_filter mid-text, odd and missing finish reasons."""
    result = message(chunks)
    assert (result["stop_reason"], kinds(result)) == (stop, blocks)


def test_h6_6_finish_then_usage_chunk() -> None:
    """The finish does not end the stream: the usage chunk after it still counts."""
    result = message([chunk({"content": "hi"}, "stop"),
                      {"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 2}}])
    assert result["usage"]["input_tokens"] == 10 and result["usage"]["output_tokens"] == 2


# H.8 usage


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"prompt_tokens": 100, "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 64}},
         {"input_tokens": 36, "output_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 64}),
        ({"prompt_tokens": 1203, "completion_tokens": 310, "prompt_cache_hit_tokens": 1152, "prompt_cache_miss_tokens": 51},
         {"input_tokens": 51, "output_tokens": 310, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1152}),
        ({"prompt_tokens": 5000, "completion_tokens": 9,
          "prompt_tokens_details": {"cached_tokens": 3000, "cache_write_tokens": 1500}},
         {"input_tokens": 500, "output_tokens": 9, "cache_creation_input_tokens": 1500, "cache_read_input_tokens": 3000}),
        ({"prompt_tokens": 10, "completion_tokens": 4, "completion_tokens_details": {"reasoning_tokens": 3}},
         {"input_tokens": 10, "output_tokens": 4, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
          "output_tokens_details": {"thinking_tokens": 3}}),
        ({"prompt_tokens": 10, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 99}},
         {"input_tokens": 0, "output_tokens": 4, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 99}),
    ],
)
def test_h11_10_usage_mapping(usage: dict[str, Any], expected: dict[str, Any]) -> None:
    """OpenAI, DeepSeek and OpenRouter cache counters map to Anthropic's (input excludes cache reads and writes)."""
    on_finish = message([chunk({"content": "hi"}, "stop", usage=usage)])
    separate = message([chunk({"content": "hi"}, "stop"), {"choices": [], "usage": usage}])
    assert on_finish["usage"] == separate["usage"] == expected


def test_h11_10_no_usage_reports_estimates() -> None:
    """Without upstream usage, the input estimate and a chars/4 output estimate stand in; never zero."""
    converter = make_converter(input_estimate=777)
    result = message([chunk({"content": "x" * 40}, "stop")], converter=converter)
    assert result["usage"] == {"input_tokens": 777, "output_tokens": 10, "cache_creation_input_tokens": 0,
                               "cache_read_input_tokens": 0}
    assert message([chunk(finish="stop")])["usage"]["output_tokens"] == 1


def test_usage_so_far_estimates_a_stream_that_never_got_its_usage() -> None:
    """A request that ends early (the client left, the stream broke) is logged with what it cost
    until then: the prompt estimate at once, the output estimate of what was written, never a
    made-up output token before any was written."""
    converter = make_converter(input_estimate=777)
    converter.start()
    assert converter.usage_so_far() == (
        {"input_tokens": 777, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        True,
    )
    converter.feed(chunk({"content": "x" * 40}))
    usage, estimated = converter.usage_so_far()
    assert (usage["input_tokens"], usage["output_tokens"], estimated) == (777, 10, True)


def test_usage_so_far_counts_a_tool_call_still_held() -> None:
    """A call's fragments wait until its arguments are whole; an interrupted one was paid for."""
    converter = make_converter(input_estimate=777)
    converter.start()
    converter.feed(calls(call(0, "call_1", "Bash", '{"command": "' + "x" * 35)))  # 48 characters
    usage, estimated = converter.usage_so_far()
    assert (usage["output_tokens"], estimated) == (12, True)


def test_usage_so_far_is_the_upstreams_when_it_sent_some() -> None:
    converter = make_converter(input_estimate=777)
    converter.start()
    converter.feed(chunk({"content": "hi"}, usage={"prompt_tokens": 50, "completion_tokens": 3}))
    usage, estimated = converter.usage_so_far()
    assert (usage["input_tokens"], usage["output_tokens"], estimated) == (50, 3, False)


def test_h11_10_usage_null_on_every_chunk_then_real() -> None:
    """C{usage: null} on ordinary chunks does not erase the real usage."""
    result = message([chunk({"content": "hi"}, usage=None), {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 1}},
                      chunk(usage=None)])
    assert result["usage"]["input_tokens"] == 7


@pytest.mark.parametrize("bad", [None, "12", -5, True, 1e400, float("nan"), [], {}])
def test_h11_10_garbage_counts_never_break_usage(bad: Any) -> None:
    """Counts that are not non-negative finite numbers read as absent."""
    usage = {"prompt_tokens": bad, "completion_tokens": bad, "prompt_tokens_details": {"cached_tokens": bad}}
    result = message([chunk({"content": "hi"}, "stop", usage=usage)])
    assert result["usage"]["input_tokens"] >= 1 and result["usage"]["output_tokens"] >= 1


# H.6 steps 7-8: cut streams and errors


def test_h6_7_end_without_finish_or_done_is_an_error() -> None:
    """No finish_reason and no [DONE]: an api_error event, never a fabricated clean end."""
    events = convert([chunk({"content": "half an ans"})], done=False)
    error = {"type": "api_error", "message": f"upstream.test: {TRUNCATED}"}
    assert events[-1] == ("error", {"type": "error", "error": error})
    error_of(events)


def test_h6_7_finish_without_done_is_a_clean_end() -> None:
    """A finish_reason makes the turn complete even if [DONE] never came."""
    assert message([chunk({"content": "hi"}, "stop")], done=False)["stop_reason"] == "end_turn"


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ({"message": "The server had an error processing your request.", "type": "server_error", "code": None}, "api_error"),
        ({"code": 502, "message": "Provider returned error"}, "api_error"),
        ({"code": 503, "message": "No instances available"}, "overloaded_error"),
        ({"code": 429, "message": "Rate limit exceeded"}, "rate_limit_error"),
        ({"code": "rate_limit_exceeded", "message": "slow down"}, "rate_limit_error"),
        ("model crashed", "api_error"),
        ({"code": 400, "message": "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens."},
         "invalid_request_error"),
        ({"code": "context_length_exceeded", "message": "This model's maximum context length is 128000 tokens."},
         "invalid_request_error"),
    ],
)
def test_h6_8_mid_stream_error_objects(error: Any, kind: str) -> None:
    """OpenAI, OpenRouter, LM Studio error objects mid-stream map to the H.9 error types."""
    events = convert([chunk({"content": "partial"}), {"error": error}])
    assert error_of(events)["type"] == kind


def test_h6_8_context_overflow_mid_stream_uses_the_prompt_too_long_wording() -> None:
    """A context error mid-stream reads as Claude Code's prompt-too-long error, so it compacts."""
    events = convert([{"error": {"code": "context_length_exceeded", "message":
                                 "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens."}}])
    assert error_of(events)["message"] == "prompt is too long: 130000 tokens > 128000 maximum"


def test_h6_8_finish_reason_error_without_error_object() -> None:
    """C{finish_reason: "error"} alone is an api_error too."""
    assert error_of(convert([chunk({"content": "partial"}, "error")]))["type"] == "api_error"


def test_h6_8_nothing_after_the_end() -> None:
    """Once the stream ended (finish or error) further input produces nothing."""
    converter = make_converter()
    converter.start()
    converter.feed({"error": {"message": "x"}})
    assert converter.ended
    assert converter.feed(chunk({"content": "late"})) == []
    assert converter.finish(True) == []
    assert converter.fail(converter._stream_error("again")) == []


def test_h6_3_non_object_chunks_are_ignored() -> None:
    """Valid JSON that is not a chunk object (a number, a list, a choice that is not an object) is skipped."""
    result = message([3, [], "x", {"choices": [None]}, {"choices": "no"}, {"choices": [{"delta": "no"}]},
                      chunk({"content": "ok"}, "stop")])
    assert result["content"] == [{"type": "text", "text": "ok"}]


# Properties


LINE_TEXT = st.text(max_size=12) | st.sampled_from(["[REDACTED]", "", "{", "}", '{"a":1}', "é🙂", "\ud83d"])
ARGUMENTS = st.sampled_from(["", "{}", '{"command":', '"ls"}', '{"a":1}{"b":2}', "not json", "null", '"{\\"x\\":1}"']) | st.text(max_size=8)
FRAGMENT = st.builds(
    lambda index, call_id, name, arguments, extra: {
        k: v for k, v in (("index", index), ("id", call_id), ("type", "function"),
                          ("function", {k2: v2 for k2, v2 in (("name", name), ("arguments", arguments)) if v2 is not None}),
                          ("extra_content", extra)) if v is not None},
    st.none() | st.integers(0, 3) | st.just("0"),
    st.none() | st.sampled_from(["", "call_a", "call_b", "functions.Bash:0", "fc-1"]),
    st.none() | st.sampled_from(["Bash", "Read", "", MCP_NAME]),
    st.none() | ARGUMENTS,
    st.none() | st.just({"google": {"thought_signature": "sig"}}),
)
DETAIL = st.fixed_dictionaries({"type": st.sampled_from(["reasoning.text", "reasoning.summary", "reasoning.encrypted", "x"])},
                                optional={"text": LINE_TEXT, "summary": LINE_TEXT, "data": LINE_TEXT,
                                          "signature": st.sampled_from(["sig", "", None]), "index": st.integers(0, 2),
                                          "format": st.sampled_from(["anthropic-claude-v1", "google-gemini-v1"])})
DELTA = st.fixed_dictionaries({}, optional={
    "role": st.just("assistant"),
    "content": st.none() | LINE_TEXT,
    "refusal": st.none() | LINE_TEXT,
    "reasoning_content": st.none() | LINE_TEXT,
    "reasoning": st.none() | LINE_TEXT,
    "reasoning_details": st.lists(DETAIL, max_size=2),
    "tool_calls": st.none() | st.lists(FRAGMENT, max_size=3),
})
COUNT = st.integers(0, 10**6) | st.none() | st.floats() | st.text(max_size=3)
USAGE = st.fixed_dictionaries({}, optional={
    "prompt_tokens": COUNT, "completion_tokens": COUNT, "prompt_cache_hit_tokens": COUNT,
    "prompt_tokens_details": st.none() | st.fixed_dictionaries({}, optional={"cached_tokens": COUNT,
                                                                             "cache_write_tokens": COUNT}),
    "completion_tokens_details": st.none() | st.fixed_dictionaries({}, optional={"reasoning_tokens": COUNT}),
})
FINISH = st.none() | st.sampled_from(["stop", "length", "tool_calls", "content_filter", "function_call", "error", "eos", ""])
CHOICE_CHUNK = st.builds(
    lambda delta, finish, usage: {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], "usage": usage},
    DELTA, FINISH, st.none() | USAGE,
)
ERROR_CHUNK = st.builds(lambda e: {"error": e}, st.sampled_from([
    {"code": 502, "message": "Provider returned error"}, {"code": "rate_limit_exceeded", "message": "x"}, "boom",
    {"message": "maximum context length is 10 tokens"}, {"code": True}, {"code": 700}]))
CHUNKS = st.lists(st.one_of(CHOICE_CHUNK, CHOICE_CHUNK, CHOICE_CHUNK, st.builds(lambda u: {"choices": [], "usage": u}, USAGE),
                            ERROR_CHUNK, st.sampled_from([None, 1, [], {"choices": None}])), max_size=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=CHUNKS, done=st.booleans(), profile=st.sampled_from(["openrouter", "deepseek", "gemini"]))
def test_property_any_chunk_sequence_gives_a_valid_stream(chunks: list[Any], done: bool, profile: str) -> None:
    """Whatever plausible chunks arrive, the converter never raises and its output always passes the grammar."""
    names = ToolNameMap.from_names([MCP_NAME])
    events = convert(chunks, done, make_converter(profile=profile, names=names))
    check_events(events)
    for _, payload in events:
        json.dumps(payload)  # what the SSE encoder will do
    try:
        result = final_message(events)
    except StreamErrorEvent:
        return
    for block in result["content"]:
        if block["type"] == "thinking":
            assert decode_carrier(block["signature"]) is not None

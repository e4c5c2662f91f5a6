"""
Tests for L{ccproxy.convert.request} and L{ccproxy.convert.messages}: Claude Code requests as OpenAI requests
(PROTOCOL.md H.1-H.3; H.11 items 1-6, 13-17).

The C{cc_*} fixtures are bodies recorded from Claude Code 2.1.328; the others are built in the same shape.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ccproxy.anthropic import RequestError
from ccproxy.convert.carrier import Carrier, encode_carrier
from ccproxy.convert.messages import EMPTY_CONVERSATION, INTERRUPTED, NO_OUTPUT
from ccproxy.convert.names import upstream_tool_name
from ccproxy.convert.request import (
    BILLING_PREFIX,
    clean_schema,
    convert_request,
    system_text,
)
from ccproxy.openai import (
    ChatMessage,
    ChatRequest,
    FilePart,
    ImagePart,
    TextPart,
    to_dict,
    to_json,
)
from ccproxy.providers import PROFILES
from ccproxy.validation import parse_messages_request
from tests.convert.helpers import anthropic_body, assert_openai_valid, convert

FIXTURES = [
    "cc_first_turn.json",
    "cc_parallel_results.json",
    "cc_tool_search.json",
    "cc_merged_turns_is_error.json",
    "cc_pdf_tool_result.json",
    "interrupted_turn.json",
    "orphan_tool_result.json",
    "images.json",
    "documents.json",
    "mcp_long_name.json",
]
MCP_NAME = "mcp__claude_ai_Atlassian_Cloud__getConfluencePageDescendantsWithFullHierarchy"
SAFE_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


def body(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A minimal Messages request body around C{messages}."""
    data: dict[str, Any] = {"model": "claude-opus-5-5", "max_tokens": 32000, "messages": list(messages)}
    data.update(fields)
    return data


def user(*content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content[0] if len(content) == 1 and isinstance(content[0], str) else list(content)}


def assistant(*content: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": list(content)}


def text(value: str, **extra: Any) -> dict[str, Any]:
    return {"type": "text", "text": value, **extra}


def tool_use(tool_id: str, name: str = "Bash", **arguments: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": arguments}


def result(tool_id: str, content: Any = "ok", **extra: Any) -> dict[str, Any]:
    block = {"type": "tool_result", "tool_use_id": tool_id, **extra}
    if content is not None:
        block["content"] = content
    return block


def thinking(signature: str, value: str = "plan") -> dict[str, Any]:
    return {"type": "thinking", "thinking": value, "signature": signature}


def to_dict_messages(messages: list[ChatMessage]) -> Any:
    """Messages as JSON data."""
    return to_dict(ChatRequest(model="m", messages=messages))["messages"]


def messages_of(data: dict[str, Any] | str, profile: str = "openrouter", model: str = "test/model") -> list[ChatMessage]:
    """The converted message list (checked for OpenAI validity on the way)."""
    converted = convert(data, profile, model).request.messages
    assert_openai_valid(converted)
    return converted


def roles(messages: list[ChatMessage]) -> list[str]:
    return [m.role for m in messages]


# Every fixture, every profile


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_converts_to_valid_openai_body(name: str, profile: str) -> None:
    """Each recorded request converts, for each provider, into an ordered, serialisable OpenAI body."""
    conversion = convert(name, profile, "gpt-5.1" if profile == "openai" else "test/model")
    assert_openai_valid(conversion.request.messages)
    data = json.loads(to_json(conversion.request))
    assert data["messages"]
    for tool in data.get("tools", []):
        assert SAFE_NAME.fullmatch(tool["function"]["name"])
        assert "$schema" not in tool["function"]["parameters"]
    assert "cache_control" not in json.dumps(data)


# H.1 request fields


def test_h1_model_is_the_routed_upstream_model() -> None:
    """The upstream gets the model routing chose, not Claude Code's model name."""
    data = to_dict(convert("cc_first_turn.json", "openrouter", "deepseek/deepseek-v3.2").request)
    assert data["model"] == "deepseek/deepseek-v3.2"
    assert "claude-opus-5-5" not in json.dumps({k: v for k, v in data.items() if k != "messages"})


def test_h1_system_drops_billing_line_and_joins_blocks() -> None:
    """The attribution block is dropped; the identity and main prompt join with a blank line (H.1 system)."""
    data = anthropic_body("cc_first_turn.json")
    assert data["system"][0]["text"].startswith(BILLING_PREFIX)
    first = messages_of(data)[0]
    assert first == ChatMessage("system", data["system"][1]["text"] + "\n\n" + data["system"][2]["text"])
    assert BILLING_PREFIX not in json.dumps(to_dict(convert(data).request))


def test_h1_system_string_and_absent() -> None:
    """A string system prompt is sent as is; no system prompt means no leading system message."""
    assert messages_of(body(user("hi"), system="Be terse."))[0] == ChatMessage("system", "Be terse.")
    assert roles(messages_of(body(user("hi")))) == ["user"]
    assert system_text([]) == "" and system_text(None) == ""


@pytest.mark.parametrize(("profile", "field"), [("openai", "max_completion_tokens"), ("openrouter", "max_tokens"),
                                                ("ollama", "max_tokens"), ("deepseek", "max_tokens")])
def test_h11_13_max_tokens_field_per_profile(profile: str, field: str) -> None:
    """C{max_tokens: 128000} goes out in the profile's field; clamping to the model cap is the edge's job."""
    data = to_dict(convert("cc_first_turn.json", profile, "gpt-5.1").request)
    assert data[field] == 128000
    other = {"max_tokens", "max_completion_tokens"} - {field}
    assert not other & set(data)


def test_h11_13_max_tokens_zero_is_floored() -> None:
    """A cache pre-warm (C{max_tokens: 0}) never asks the upstream for zero tokens."""
    assert to_dict(convert(body(user("hi"), max_tokens=0)).request)["max_tokens"] == 1


@pytest.mark.parametrize("stream", [True, False])
def test_h11_17_upstream_is_always_streamed_with_usage(stream: bool) -> None:
    """Streaming or not for the client, the upstream streams and reports usage (H.1 stream)."""
    data = to_dict(convert(body(user("hi"), stream=stream)).request)
    assert data["stream"] is True
    assert data["stream_options"] == {"include_usage": True}


def test_h1_stop_sequences_keep_four() -> None:
    """At most four stop sequences go upstream."""
    data = to_dict(convert(body(user("hi"), stop_sequences=["a", "b", "c", "d", "e"])).request)
    assert data["stop"] == ["a", "b", "c", "d"]
    assert "stop" not in to_dict(convert(body(user("hi"))).request)


@pytest.mark.parametrize(("profile", "model", "kept"), [("openrouter", "x/y", True), ("openai", "gpt-4o", True),
                                                        ("openai", "gpt-5.1", False), ("openai", "o3", False)])
def test_h1_sampling_dropped_for_reasoning_models(profile: str, model: str, kept: bool) -> None:
    """C{temperature}/C{top_p} pass unless the model rejects them; C{top_k} never goes upstream."""
    data = to_dict(convert(body(user("hi"), temperature=0.2, top_p=0.9, top_k=40), profile, model).request)
    assert ("temperature" in data) is kept and ("top_p" in data) is kept
    if kept:
        assert (data["temperature"], data["top_p"]) == (0.2, 0.9)
    assert "top_k" not in data


def test_h11_15_anthropic_only_fields_are_not_forwarded() -> None:
    """metadata (a JSON string user id), context_management, thinking and output_config stay behind (H.1)."""
    original = anthropic_body("cc_first_turn.json")
    assert json.loads(original["metadata"]["user_id"])["session_id"]
    data = to_dict(convert(original).request)
    for key in ("metadata", "context_management", "thinking", "output_config", "user", "system"):
        assert key not in data
    assert original["metadata"]["user_id"] not in json.dumps(data)


@pytest.mark.parametrize(
    ("profile", "model", "expected"),
    [
        ("openrouter", "anthropic/claude-sonnet-4.5", {"reasoning": {"effort": "medium"}}),
        ("openai", "gpt-5.1", {"reasoning_effort": "medium"}),
        ("openai", "gpt-4o", {}),
        ("ollama", "qwen3:32b", {"reasoning_effort": "medium"}),
    ],
)
def test_h1_adaptive_thinking_and_effort(profile: str, model: str, expected: dict[str, Any]) -> None:
    """Claude Code's adaptive thinking with C{effort: medium} becomes the provider's reasoning field."""
    data = to_dict(convert("cc_first_turn.json", profile, model).request)
    assert {k: data[k] for k in ("reasoning", "reasoning_effort") if k in data} == expected


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "Bash"}, {"type": "function", "function": {"name": "Bash"}}),
        ({"type": "tool", "name": MCP_NAME}, {"type": "function", "function": {"name": upstream_tool_name(MCP_NAME)}}),
    ],
)
def test_h1_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    """auto/any/tool/none map to auto/required/function/none, with the tool's upstream name."""
    tools = [{"name": "Bash", "input_schema": {"type": "object"}}, {"name": MCP_NAME, "input_schema": {"type": "object"}}]
    data = to_dict(convert(body(user("hi"), tools=tools, tool_choice=choice)).request)
    assert data["tool_choice"] == expected
    assert "parallel_tool_calls" not in data


def test_h1_disable_parallel_tool_use() -> None:
    """C{disable_parallel_tool_use} becomes C{parallel_tool_calls: false} (recorded MCP fixture)."""
    data = to_dict(convert("mcp_long_name.json").request)
    assert data["tool_choice"] == "auto"
    assert data["parallel_tool_calls"] is False


def test_h1_no_tools_no_tool_choice() -> None:
    """Without tools, C{tool_choice} and C{parallel_tool_calls} are omitted."""
    data = to_dict(convert(body(user("hi"), tool_choice={"type": "any", "disable_parallel_tool_use": True})).request)
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(data)


def test_h1_typed_server_tools_are_dropped_and_reported() -> None:
    """A typed tool (C{web_search_20250305}) has no function form: dropped and named in C{dropped_tools}."""
    conversion = convert("mcp_long_name.json")
    assert conversion.dropped_tools == ("web_search",)
    assert "web_search" not in [tool.function.name for tool in conversion.request.tools or []]


# H.3 tools, names and ids


def test_h3_tool_definition() -> None:
    """A tool becomes a function with its description and a cleaned schema (no C{$schema}, C{strict} etc.)."""
    tool = next(t for t in anthropic_body("cc_first_turn.json")["tools"] if t["name"] == "Read")
    assert "$schema" in tool["input_schema"]
    converted = next(t for t in to_dict(convert("cc_first_turn.json").request)["tools"] if t["function"]["name"] == "Read")
    expected = {k: v for k, v in tool["input_schema"].items() if k != "$schema"}
    assert converted == {"type": "function", "function": {"name": "Read", "description": tool["description"],
                                                          "parameters": expected}}


def test_h3_clean_schema_always_gives_an_object() -> None:
    """Missing schemas, types or properties are filled in so strict servers accept the tool."""
    assert clean_schema(None) == {"type": "object", "properties": {}}
    assert clean_schema({"$schema": "x", "required": []}) == {"type": "object", "properties": {}, "required": []}
    tools = [{"name": "Ping", "input_schema": {"type": "object"}, "strict": True, "cache_control": {"type": "ephemeral"},
              "input_examples": [{}], "eager_input_streaming": True}]
    data = to_dict(convert(body(user("hi"), tools=tools)).request)
    assert data["tools"] == [{"type": "function", "function": {"name": "Ping", "description": "",
                                                               "parameters": {"type": "object", "properties": {}}}}]


def test_h11_15_deferred_placeholder_is_omitted() -> None:
    """Claude Code's C{DeferredToolPlaceholder} (no properties, C{defer_loading}) never goes upstream (H.3)."""
    names = [tool.function.name for tool in convert("cc_first_turn.json").request.tools or []]
    assert "DeferredToolPlaceholder" not in names
    assert len(names) == 11


def test_h11_15_deferred_tools_loaded_by_tool_search_are_sent() -> None:
    """
    Tools ToolSearch loaded (recorded: listed with C{defer_loading} and named by C{tool_reference} blocks in the
    result) are sent; the placeholder still is not.
    """
    names = [tool.function.name for tool in convert("cc_tool_search.json").request.tools or []]
    assert {"NotebookEdit", "WebFetch"} <= set(names)
    assert "DeferredToolPlaceholder" not in names


def test_h3_deferred_tool_without_reference_is_omitted_until_used() -> None:
    """A deferred tool nobody loaded stays out; once the history calls it, it is sent (H.3 deferred tools)."""
    tools = [{"name": "Bash", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}},
             {"name": "WebFetch", "defer_loading": True,
              "input_schema": {"type": "object", "properties": {"url": {"type": "string"}}}}]
    unused = convert(body(user("hi"), tools=tools)).request.tools or []
    assert [tool.function.name for tool in unused] == ["Bash"]
    history = body(user("fetch it"), assistant(tool_use("toolu_1", "WebFetch", url="https://x")),
                   user(result("toolu_1", "page")), tools=tools)
    used = convert(history).request.tools or []
    assert [tool.function.name for tool in used] == ["Bash", "WebFetch"]


def test_h11_15_long_mcp_name_mapped_everywhere() -> None:
    """A >64-character MCP name maps the same way in tools, history calls and back (H.3 names)."""
    conversion = convert("mcp_long_name.json")
    upstream = upstream_tool_name(MCP_NAME)
    assert len(MCP_NAME) > 64 and len(upstream) <= 64
    assert upstream in [tool.function.name for tool in conversion.request.tools or []]
    call = next(m for m in conversion.request.messages if m.tool_calls).tool_calls[0]  # type: ignore[index]
    assert call.function.name == upstream
    assert conversion.names.to_client(upstream) == MCP_NAME
    assert "mcp__github__create_issue" in [tool.function.name for tool in conversion.request.tools or []]


@pytest.mark.parametrize(
    ("profile", "client_id", "pattern"),
    [
        ("openai", "toolu_" + "x" * 60, r"[a-zA-Z0-9_-]{1,40}"),
        ("mistral", "toolu_01A8kzMLw3jQ3xDuQHw9gWb4", r"[a-zA-Z0-9]{9}"),
        ("openrouter", "functions.Bash:0", r"functions_Bash_0_[a-z2-7]{6}"),
    ],
)
def test_h11_6_replayed_ids_fit_the_provider(profile: str, client_id: str, pattern: str) -> None:
    """History ids are mapped per provider, identically in the call and its result, and reversibly."""
    conversion = convert(body(user("go"), assistant(tool_use(client_id)), user(result(client_id))), profile, "gpt-5.1")
    call, answer = conversion.request.messages[1], conversion.request.messages[2]
    assert call.tool_calls is not None
    upstream_id = call.tool_calls[0].id
    assert re.fullmatch(pattern, upstream_id)
    assert answer.tool_call_id == upstream_id
    assert conversion.ids.to_client(upstream_id) == client_id


# H.2 messages


def test_h2_1_string_content_and_blank_text_blocks() -> None:
    """String content is one text block; empty and blank text blocks are dropped everywhere (H.11 item 4)."""
    converted = messages_of(body(user(text(""), text("  \n"), text("real")), assistant(text(""), text("answer")),
                                 user("next")))
    assert converted == [ChatMessage("user", "real"), ChatMessage("assistant", "answer"), ChatMessage("user", "next")]


def test_h2_3_assistant_text_and_calls() -> None:
    """Assistant texts join with C{""}; tool_use blocks become calls in order with compact JSON arguments."""
    converted = messages_of("cc_parallel_results.json")
    call = next(m for m in converted if m.role == "assistant")
    assert call.content == "Let me look at those files."
    assert call.tool_calls is not None
    assert [(c.id, c.function.name) for c in call.tool_calls] == [
        ("toolu_01A8kzMLw3jQ3xDuQHw9gWb4", "Read"), ("toolu_01Bq7N2cWx6Lr9tYp4ZsXe1F", "Bash"),
        ("toolu_01CmR5vHd8Ke3Ws2Qa7Tj6Ux", "Read")]
    assert call.tool_calls[1].function.arguments == (
        '{"command":"ls -la","description":"List files in the working directory"}')


def test_h2_3_empty_input_is_sent_as_empty_object() -> None:
    """A call without input sends C{"{}"}, never C{""} (Ollama rejects invalid JSON arguments)."""
    converted = messages_of(body(user("go"), assistant(tool_use("toolu_1", "ListAgents")), user(result("toolu_1"))))
    assert converted[1].tool_calls is not None
    assert converted[1].tool_calls[0].function.arguments == "{}"


def test_h11_4_assistant_with_only_thinking_is_dropped() -> None:
    """An assistant turn with nothing but thinking (foreign or ours) sends no empty assistant message."""
    ours = encode_carrier(Carrier(profile="generic", model="test/model"))
    for signature in ("EuYBCkQIBxgC", ours):
        data = body(user("a"), assistant({"type": "thinking", "thinking": "hmm", "signature": signature}), user("b"))
        for profile in ("generic", "openrouter", "deepseek", "openai"):
            expected = ["user"] if PROFILES[profile].merge_roles else ["user", "user"]  # DeepSeek merges them
            assert roles(messages_of(data, profile)) == expected, (profile, signature)


def test_h2_3_server_tool_blocks_and_redacted_thinking_are_dropped() -> None:
    """Server-tool artefacts and redacted thinking have no OpenAI form (H.2 step 3)."""
    converted = messages_of(body(
        user("search"),
        assistant({"type": "redacted_thinking", "data": "EmwKAhgB"},
                  {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}},
                  {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
                  text("Found it.")),
        user("thanks")))
    assert converted[1] == ChatMessage("assistant", "Found it.")


def test_h11_2_tool_results_first_in_call_order() -> None:
    """
    Recorded parallel calls answered in another order (Read C, Read A, Bash B): tool messages follow the call
    order, right after the assistant message.
    """
    data = anthropic_body("cc_parallel_results.json")
    results = [b["tool_use_id"] for b in data["messages"][-1]["content"]]
    assert results == ["toolu_01CmR5vHd8Ke3Ws2Qa7Tj6Ux", "toolu_01A8kzMLw3jQ3xDuQHw9gWb4", "toolu_01Bq7N2cWx6Lr9tYp4ZsXe1F"]
    converted = messages_of(data)
    tools = [m for m in converted if m.role == "tool"]
    assert [m.tool_call_id for m in tools] == [
        "toolu_01A8kzMLw3jQ3xDuQHw9gWb4", "toolu_01Bq7N2cWx6Lr9tYp4ZsXe1F", "toolu_01CmR5vHd8Ke3Ws2Qa7Tj6Ux"]
    assert tools[2].content == "1\tmeeting notes\n2\t- ship ccproxy\n3\t"


def test_h11_2_trailing_user_text_after_results() -> None:
    """Tool results and user text in one message: the tool messages first, then one user message with the text."""
    converted = messages_of("interrupted_turn.json")
    tail = converted[-4:]
    assert roles(tail) == ["assistant", "tool", "tool", "user"]
    assert tail[-1] == ChatMessage(
        "user", "[Request interrupted by user for tool use]\n\nonly run tests/convert, the rest is slow")


def test_h11_1_tool_result_content_forms() -> None:
    """String, [text], [text, image], [] and absent content, and C{is_error} (H.2 step 4)."""
    calls = [tool_use(f"toolu_{n}") for n in range(6)]
    results = [
        result("toolu_0", "plain"),
        result("toolu_1", [text("first"), text("second")]),
        result("toolu_2", [text("see"), {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                      "data": PNG}}]),
        result("toolu_3", []),
        result("toolu_4", None),
        result("toolu_5", "boom", is_error=True),
    ]
    converted = messages_of(body(user("go"), assistant(*calls), user(*results)))
    tools = [m.content for m in converted if m.role == "tool"]
    assert tools == ["plain", "first\nsecond", "see\n[image attached below]", NO_OUTPUT, NO_OUTPUT, "Error: boom"]
    assert converted[-1] == ChatMessage("user", [TextPart("Images from the tool results above:"),
                                                 ImagePart({"url": f"data:image/png;base64,{PNG}"})])


def test_h11_1_recorded_is_error_result() -> None:
    """The recorded failed Read (C{is_error: true}) reads C{Error: …} upstream."""
    converted = messages_of("cc_merged_turns_is_error.json")
    errors = [m.content for m in converted if m.role == "tool" and str(m.content).startswith("Error: ")]
    assert errors == ["Error: File does not exist. Note: your current working directory is /tmp/capture/home/work."]


def test_h2_4_tool_reference_search_result_and_text_document_render_as_text() -> None:
    """tool_reference, search_result and text documents inside a result become text (recorded ToolSearch run)."""
    converted = messages_of("cc_tool_search.json")
    assert [m.content for m in converted if m.role == "tool"] == ["Tool 'NotebookEdit' loaded.\nTool 'WebFetch' loaded."]
    inner = [{"type": "search_result", "source": "https://docs.example/sse", "title": "SSE",
              "content": [text("Events end with a blank line.")]},
             {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc body"}}]
    converted = messages_of(body(user("go"), assistant(tool_use("toolu_1")), user(result("toolu_1", inner))))
    assert converted[2].content == "[SSE](https://docs.example/sse)\nEvents end with a blank line.\ndoc body"


def test_h11_16_user_images() -> None:
    """Pasted PNG/JPEG become data URLs; a URL image is passed on, except to Ollama which cannot fetch it."""
    for profile, url_part in (("openrouter", ImagePart({"url": "https://example.com/screenshots/error-dialog.png"})),
                              ("ollama", None)):
        first_user = messages_of("images.json", profile)[1]
        assert isinstance(first_user.content, list)
        images = [p for p in first_user.content if isinstance(p, ImagePart)]
        assert images[0].image_url["url"] == f"data:image/png;base64,{PNG}"
        assert images[1].image_url["url"].startswith("data:image/jpeg;base64,/9j/")
        if url_part is not None:
            assert images[2] == url_part
        else:
            assert len(images) == 2
            assert any(isinstance(p, TextPart) and "error-dialog.png" in p.text for p in first_user.content)


def test_h11_16_image_inside_tool_result_moves_to_a_user_message() -> None:
    """OpenAI forbids images in tool messages: a note stays there and the image follows all tool messages."""
    converted = messages_of("images.json")
    assert roles(converted[-3:]) == ["assistant", "tool", "user"]
    assert converted[-2].content == ("Image file read: /home/dev/project/docs/architecture.png (70 bytes)\n"
                                     "[image attached below]")
    assert converted[-1].content == [TextPart("Images from the tool results above:"),
                                     ImagePart({"url": f"data:image/png;base64,{PNG}"})]


def test_h11_16_pdf_documents() -> None:
    """A PDF is a C{file} part where the provider reads PDFs, a note elsewhere; text documents are text."""
    data = anthropic_body("documents.json")
    pdf = data["messages"][0]["content"][1]["source"]["data"]
    parts = messages_of(data, "openrouter")[1].content
    assert isinstance(parts, list)
    assert parts[1] == FilePart({"filename": "spec.pdf", "file_data": f"data:application/pdf;base64,{pdf}"})
    texts = [p.text for p in parts if isinstance(p, TextPart)]
    assert "ccproxy changelog\n- 0.1: first release" in texts
    assert "Section 1: streaming.\nSection 2: errors." in texts
    assert "[document: SSE RFC: https://example.com/rfc/sse.pdf]" in texts
    folded = messages_of(data, "deepseek")[1].content
    assert isinstance(folded, str)
    assert "[PDF omitted: spec.pdf: this provider does not read PDFs]" in folded


def test_h11_16_pdf_inside_tool_result_is_labelled_as_a_document() -> None:
    """The recorded Read of a PDF: the tool message says a document follows, and the file part follows it."""
    converted = messages_of("cc_pdf_tool_result.json")
    assert converted[-2].content == ("PDF file read: /tmp/capture/home/work/spec.pdf (589 bytes)\n"
                                     "[document attached below]")
    parts = converted[-1].content
    assert isinstance(parts, list) and [p.type for p in parts] == ["text", "file"]
    assert parts[0] == TextPart("Attachments from the tool results above:")


def test_h11_3_interrupted_call_gets_a_synthetic_result() -> None:
    """The recorded-shape interrupted turn: the unanswered call is answered with the interruption marker."""
    converted = messages_of("interrupted_turn.json")
    tools = [(m.tool_call_id, m.content) for m in converted if m.role == "tool"]
    assert tools == [("toolu_01SlowTests9aB8cD7eF6gH5j", "Error: [Request interrupted by user for tool use]"),
                     ("toolu_01LintRun2kL3mN4pQ5rS6tU7v", INTERRUPTED)]


def test_h11_3_call_followed_by_assistant_or_end_is_closed() -> None:
    """A call followed by another assistant turn, or ending the conversation, still gets its result."""
    converted = messages_of(body(user("go"), assistant(tool_use("toolu_1")), assistant(text("never mind"))))
    assert roles(converted) == ["user", "assistant", "tool", "assistant"]
    converted = messages_of(body(user("go"), assistant(tool_use("toolu_1"))))
    assert roles(converted) == ["user", "assistant", "tool"] and converted[-1].content == INTERRUPTED


def test_h11_3_orphan_result_becomes_user_text() -> None:
    """A result whose call is gone (after compaction) is kept as user text, before the rest of the message."""
    converted = messages_of("orphan_tool_result.json")
    assert "tool" not in roles(converted)
    assert converted[-1] == ChatMessage("user", (
        "Tool result (toolu_01StaleResult0aB1cD2eF3gH): 3 passed in 0.12s\n\n<system-reminder>\n"
        "The user opened the file tests/test_sse.py in the IDE.\n</system-reminder>\n\ngo on"))


def test_h2_5_duplicate_result_first_wins() -> None:
    """Two results for one call: the first one answers it."""
    converted = messages_of(body(user("go"), assistant(tool_use("toolu_1")),
                                 user(result("toolu_1", "first"), result("toolu_1", "second"))))
    assert [m.content for m in converted if m.role == "tool"] == ["first"]


def test_h2_7_trailing_assistant_is_kept() -> None:
    """A final assistant message (prefill) is sent unchanged as the last message."""
    converted = messages_of(body(user("Say yes"), assistant(text("Yes"))))
    assert converted[-1] == ChatMessage("assistant", "Yes")


def test_h2_8_messages_never_empty() -> None:
    """A conversation whose only text is blank still sends one user message."""
    for content in ("", "   ", [text("")]):
        converted = convert(body({"role": "user", "content": content})).request.messages
        assert converted == [ChatMessage("user", EMPTY_CONVERSATION)]
        assert_openai_valid(converted)


def test_h11_14_mid_conversation_system_inline() -> None:
    """Profiles that accept it keep C{role: system} in place: the recorded block array and string forms."""
    for name in ("cc_first_turn.json", "cc_parallel_results.json"):
        data = anthropic_body(name)
        system_message = data["messages"][1]
        assert system_message["role"] == "system"
        content = system_message["content"]
        expected = content if isinstance(content, str) else content[0]["text"]
        converted = messages_of(data, "openrouter")
        assert converted[2] == ChatMessage("system", expected)


def test_h11_14_mid_conversation_system_folded() -> None:
    """Elsewhere its text is appended to the user message it follows, as a system reminder."""
    data = anthropic_body("cc_first_turn.json")
    env = data["messages"][1]["content"][0]["text"]
    converted = messages_of(data, "deepseek")
    assert roles(converted) == ["system", "user"]
    assert isinstance(converted[1].content, str)
    assert converted[1].content.endswith(f"\n\n<system-reminder>\n{env}\n</system-reminder>")
    assert converted[1].content.startswith(data["messages"][0]["content"][0]["text"])


@pytest.mark.parametrize("profile", ["openrouter", "deepseek"])
def test_h11_14_system_never_between_call_and_results(profile: str) -> None:
    """A system message between a call and its result is placed after the tool messages."""
    converted = messages_of(body(user("go"), assistant(tool_use("toolu_1")),
                                 {"role": "system", "content": [text("Env changed.", cache_control={"type": "ephemeral"})]},
                                 user(result("toolu_1"), text("next"))), profile)
    assert roles(converted)[:3] == ["user", "assistant", "tool"]
    rest = json.dumps(to_dict_messages(converted[3:]))
    assert "Env changed." in rest


def mid_conv_system(*texts: str) -> dict[str, Any]:
    return {"type": "mid_conv_system", "content": [text(t) for t in texts]}


def test_a3_mid_conv_system_block_inline_after_its_message() -> None:
    """The SDK's block form is a system message right after the message holding it."""
    converted = messages_of(body(user(text("hi"), mid_conv_system("Env A.", "Env B."))), "openrouter")
    assert converted[-2:] == [ChatMessage("user", "hi"), ChatMessage("system", "Env A.\n\nEnv B.")]
    assert_openai_valid(converted)


def test_a3_mid_conv_system_block_folded_into_its_user_message() -> None:
    converted = messages_of(body(user(text("hi"), mid_conv_system("Env."))), "deepseek")
    assert converted == [ChatMessage("user", "hi\n\n<system-reminder>\nEnv.\n</system-reminder>")]


@pytest.mark.parametrize("profile", ["openrouter", "deepseek"])
def test_a3_mid_conv_system_block_in_an_assistant_turn_waits_for_the_results(profile: str) -> None:
    converted = messages_of(body(user("go"), assistant(tool_use("toolu_1"), mid_conv_system("Env changed.")),
                                 user(result("toolu_1"), text("next"))), profile)
    assert roles(converted)[:3] == ["user", "assistant", "tool"]
    assert "Env changed." in json.dumps(to_dict_messages(converted[3:]))
    assert "Env changed." not in json.dumps(to_dict_messages(converted[:3]))


def test_a3_mid_conv_system_block_must_hold_text_blocks() -> None:
    bad = {"type": "mid_conv_system", "content": [{"type": "image", "source": {}}]}
    with pytest.raises(RequestError, match="messages"):
        parse_messages_request(body(user(text("hi"), bad)))


def test_h11_14_leading_system_message_goes_into_the_first_user_message() -> None:
    """Folded system text with no user message before it starts the next user message."""
    converted = messages_of(body({"role": "system", "content": "Env."}, user("hi")), "deepseek")
    assert converted == [ChatMessage("user", "<system-reminder>\nEnv.\n</system-reminder>\n\nhi")]


# H.11 item 5: thinking from earlier turns


@pytest.mark.parametrize(("profile", "field"), [("deepseek", "reasoning_content"), ("openrouter", "reasoning"),
                                                ("ollama", "reasoning")])
def test_h11_5_our_carrier_replays_reasoning_to_the_same_provider(profile: str, field: str) -> None:
    """Thinking we produced for this provider goes back in its reasoning field."""
    signature = encode_carrier(Carrier(profile=profile, model="test/model"))
    converted = messages_of(body(user("go"), assistant(thinking(signature, "step one"), tool_use("toolu_1")),
                                 user(result("toolu_1"))), profile)
    assert getattr(converted[1], field) == "step one"


@pytest.mark.parametrize("signature", ["sig123", "EuYBCkQIBxgCKkDmK0oZ", "ccp1.not-base64!",
                                       encode_carrier(Carrier(profile="ollama", model="qwen3"))])
def test_h11_5_foreign_signatures_are_not_replayed(signature: str) -> None:
    """Real Anthropic signatures, damaged carriers and other providers' carriers are dropped."""
    converted = messages_of(body(user("go"), assistant(thinking(signature), tool_use("toolu_1")),
                                 user(result("toolu_1"))), "openrouter")
    assert converted[1].reasoning is None and converted[1].reasoning_content is None


def test_h11_5_deepseek_gets_empty_reasoning_after_tool_calls() -> None:
    """DeepSeek requires C{reasoning_content} on tool-call turns: C{""} when nothing can be replayed."""
    converted = messages_of("cc_parallel_results.json", "deepseek")
    call = next(m for m in converted if m.tool_calls)
    assert call.reasoning_content == ""
    plain = messages_of(body(user("a"), assistant(thinking("sig123"), text("b")), user("c")), "deepseek")
    assert plain[1] == ChatMessage("assistant", "b")


def test_h11_5_nothing_replayed_to_openai() -> None:
    """OpenAI has no reasoning input: even its own carrier is not replayed."""
    signature = encode_carrier(Carrier(profile="openai", model="gpt-5.1"))
    converted = messages_of(body(user("go"), assistant(thinking(signature), tool_use("toolu_1")),
                                 user(result("toolu_1"))), "openai", "gpt-5.1")
    assert "reasoning" not in json.dumps(to_dict_messages(converted))


# Properties


SIGNATURES = st.sampled_from(["", "sig123", encode_carrier(Carrier(profile="openrouter", model="test/model")),
                              encode_carrier(Carrier(profile="deepseek", model="test/model"))])
TOOL_IDS = st.sampled_from(["toolu_01A", "toolu_01B", "call_x", "functions.Bash:0", "toolu_" + "y" * 50, "t"])
TOOL_NAMES = st.sampled_from(["Bash", "Read", MCP_NAME, "mcp__github__create_issue", "a.b"])
SHORT_TEXT = st.sampled_from(["", " ", "ok", "<system-reminder>\nx\n</system-reminder>", "é ✓"]) | st.text(max_size=20)
IMAGE = st.fixed_dictionaries({"type": st.just("image"), "source": st.sampled_from([
    {"type": "base64", "media_type": "image/png", "data": PNG}, {"type": "url", "url": "https://x/y.png"}])})
DOCUMENT = st.fixed_dictionaries({"type": st.just("document"), "source": st.sampled_from([
    {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
    {"type": "text", "media_type": "text/plain", "data": "doc"},
    {"type": "content", "content": [{"type": "text", "text": "c"}]}, {"type": "url", "url": "https://x/d.pdf"}])})
TEXT = st.builds(lambda t, c: {"type": "text", "text": t, **c}, SHORT_TEXT,
                 st.sampled_from([{}, {"cache_control": {"type": "ephemeral"}}]))
INNER = st.lists(TEXT | IMAGE | DOCUMENT | st.builds(lambda n: {"type": "tool_reference", "tool_name": n}, TOOL_NAMES),
                 max_size=3)
RESULT = st.builds(lambda i, c, e: {"type": "tool_result", "tool_use_id": i, "is_error": e,
                                    **({} if c is None else {"content": c})},
                   TOOL_IDS, st.none() | SHORT_TEXT | INNER, st.booleans())
SEARCH_RESULT = st.just({"type": "search_result", "source": "https://x", "title": "X", "content": [{"type": "text", "text": "x"}]})
USER_BLOCKS = st.lists(TEXT | IMAGE | DOCUMENT | RESULT | SEARCH_RESULT, max_size=4)
ASSISTANT_BLOCKS = st.lists(
    TEXT
    | st.builds(lambda i, n, a: {"type": "tool_use", "id": i, "name": n, "input": a}, TOOL_IDS, TOOL_NAMES,
                st.dictionaries(st.sampled_from(["command", "path"]), SHORT_TEXT, max_size=2))
    | st.builds(lambda t, s: {"type": "thinking", "thinking": t, "signature": s}, SHORT_TEXT, SIGNATURES)
    | st.just({"type": "redacted_thinking", "data": "EmwKAhgB"})
    | st.just({"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}),
    max_size=4,
)
MESSAGES = st.lists(
    st.one_of(
        st.builds(lambda c: {"role": "user", "content": c}, SHORT_TEXT | USER_BLOCKS),
        st.builds(lambda c: {"role": "assistant", "content": c}, SHORT_TEXT | ASSISTANT_BLOCKS),
        st.builds(lambda c: {"role": "system", "content": c}, SHORT_TEXT | st.lists(TEXT, max_size=2)),
    ),
    min_size=1,
    max_size=8,
)
TOOLS = st.lists(st.builds(lambda n, d: {"name": n, "input_schema": {"type": "object", "properties": {"a": {}}},
                                         **({"defer_loading": True} if d else {})}, TOOL_NAMES, st.booleans())
                 | st.just({"type": "web_search_20250305", "name": "web_search", "max_uses": 5}),
                 max_size=3)
OPTIONS = st.fixed_dictionaries({}, optional={
    "tool_choice": st.sampled_from([{"type": "auto"}, {"type": "any", "disable_parallel_tool_use": True}, {"type": "none"},
                                    {"type": "tool", "name": "Bash"}, {"type": "tool", "name": MCP_NAME}]),
    "thinking": st.sampled_from([{"type": "adaptive", "display": "omitted"}, {"type": "enabled", "budget_tokens": 2048},
                                 {"type": "enabled", "budget_tokens": 30000}, {"type": "disabled"}]),
    "output_config": st.sampled_from([{"effort": e} for e in ("low", "medium", "high", "xhigh", "max")] + [{}]),
    "stop_sequences": st.lists(st.text(min_size=1, max_size=3), max_size=6),
    "temperature": st.floats(0, 1),
    "max_tokens": st.sampled_from([0, 1, 32000, 128000]),
    "stream": st.booleans(),
    "metadata": st.just({"user_id": '{"device_id":"d","account_uuid":"","session_id":"s"}'}),
})


def unique_tool_use_ids(messages: list[dict[str, Any]]) -> bool:
    """Anthropic rejects a request that repeats a tool_use id; such requests are not schema-valid."""
    seen = [b["id"] for m in messages if isinstance(m["content"], list) for b in m["content"] if b["type"] == "tool_use"]
    return len(seen) == len(set(seen))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(messages=MESSAGES.filter(unique_tool_use_ids), tools=TOOLS, system=st.none() | SHORT_TEXT, options=OPTIONS,
       profile=st.sampled_from(sorted(PROFILES)))
def test_property_any_valid_request_converts_to_valid_openai_order(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]], system: str | None, options: dict[str, Any],
    profile: str,
) -> None:
    """Request conversion never raises on a schema-valid request and always yields an order OpenAI accepts."""
    forced = options.get("tool_choice", {}).get("name")
    assume(forced is None or forced in [tool["name"] for tool in tools if "type" not in tool])  # Anthropic checks it
    data = body(*messages, tools=tools, **options, **({"system": system} if system is not None else {}))
    try:
        request = parse_messages_request(data)
    except RequestError:  # pragma: no cover - the strategies only build valid bodies
        pytest.fail("the strategy built an invalid body")
    conversion = convert_request(request, "gpt-5.1", PROFILES[profile])
    assert_openai_valid(conversion.request.messages)
    for message in conversion.request.messages:
        for call in message.tool_calls or []:
            assert SAFE_NAME.fullmatch(call.function.name)
            assert re.fullmatch(PROFILE_IDS[profile], call.id)
    sent = to_dict(conversion.request)
    json.dumps(sent)
    if "tool_choice" in sent:
        assert sent["tools"]
        if isinstance(sent["tool_choice"], dict):
            assert sent["tool_choice"]["function"]["name"] in [t["function"]["name"] for t in sent["tools"]]


PROFILE_IDS = {name: r"[a-zA-Z0-9_-]+" for name in PROFILES} | {"openai": r"[a-zA-Z0-9_-]{1,40}",
                                                                 "mistral": r"[a-zA-Z0-9]{9}"}


def test_images_to_a_model_without_vision_become_a_note() -> None:
    """A known text-only model (codestral) gets a note instead of image parts."""
    from ccproxy.convert.request import convert_request
    from ccproxy.providers import PROFILES
    from ccproxy.validation import parse_messages_request

    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    request = parse_messages_request(
        {"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": [image, {"type": "text", "text": "what is it?"}]}]}
    )
    seen = convert_request(request, "codestral-latest", PROFILES["generic"]).request.messages[-1].content
    assert isinstance(seen, str) and "codestral-latest does not read images" in seen
    sent = convert_request(request, "gpt-5", PROFILES["generic"]).request.messages[-1].content
    assert not isinstance(sent, str) and sent[0].type == "image_url"

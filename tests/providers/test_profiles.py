"""Provider profiles: each provider gets exactly its dialect (PROTOCOL.md G, H.1-H.4).

The whole-request tests compare the body ccproxy builds for a realistic Claude Code turn
(C{anthropic/cc_provider_turn.json}: billing line, cached system blocks, zod and MCP tool schemas,
adaptive thinking, a mid-conversation system message, a thinking block carrying our carrier, two
calls, an error result, an image result, a cached system reminder) with the recorded-shape body in
C{fixtures/<provider>/<provider>_request.json}, and check that the provider's validation accepts it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ccproxy.adapt import fix_for_error
from ccproxy.anthropic import OutputConfig, Thinking
from ccproxy.config import load_settings
from ccproxy.convert.carrier import Carrier, encode_carrier
from ccproxy.convert.dialect import (
    BRIDGE,
    bridge_tool_results,
    cap_cache_breakpoints,
    merge_roles,
)
from ccproxy.convert.replay import SIGNATURE_BYPASS
from ccproxy.convert.request import convert_request
from ccproxy.errors import from_upstream
from ccproxy.openai import ChatMessage, ImagePart, TextPart, to_dict, to_json
from ccproxy.providers import PROFILES, profile_for, profile_named
from ccproxy.reasoning import (
    deepseek_reasoning,
    gemini_reasoning,
    groq_reasoning,
    ollama_reasoning,
    openai_reasoning,
    openrouter_reasoning,
)
from ccproxy.schema import gemini_schema
from ccproxy.validation import parse_messages_request
from tests.providers.dialects import (
    BASH_ID,
    DIALECTS,
    FIXTURES,
    GEMINI_SIGNATURE,
    READ_ID,
    SESSION,
    THINKING,
)


def claude_code_turn(carrier: Carrier) -> dict[str, Any]:
    """The recorded-shape Claude Code turn, its thinking block signed with C{carrier}."""
    text = (FIXTURES / "anthropic" / "cc_provider_turn.json").read_text(encoding="utf-8")
    body: dict[str, Any] = json.loads(text.replace('"CARRIER"', json.dumps(encode_carrier(carrier))))
    return body


def converted(body: dict[str, Any], provider: str, model: str, session: str | None = SESSION) -> dict[str, Any]:
    """The JSON body ccproxy sends C{provider} for C{body}."""
    data: dict[str, Any] = json.loads(to_json(convert_request(parse_messages_request(body), model, PROFILES[provider],
                                                              session_id=session).request))
    return data


def simple(messages: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 4096, "messages": messages, **fields}


def call_turn(signature: str, *calls: str) -> list[dict[str, Any]]:
    """A user prompt, an assistant turn with thinking (C{signature}) and calls, and their results."""
    return [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": THINKING, "signature": signature},
                                          *({"type": "tool_use", "id": c, "name": "Bash", "input": {"command": "ls"}}
                                            for c in calls)]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": c, "content": "ok"} for c in calls]},
    ]


# The whole request, per provider


@pytest.mark.parametrize("provider", sorted(DIALECTS))
def test_request_has_exactly_the_provider_shape(provider: str) -> None:
    """A realistic Claude Code turn becomes, field for field, the body recorded for that provider."""
    dialect = DIALECTS[provider]
    data = converted(claude_code_turn(dialect.carrier), provider, dialect.model)
    expected = json.loads(dialect.request_fixture().read_text(encoding="utf-8"))
    assert data == expected


@pytest.mark.parametrize("provider", sorted(DIALECTS))
def test_recorded_request_is_one_the_provider_accepts(provider: str) -> None:
    """Each recorded body passes that provider's validation (the fake upstream's 400 rules)."""
    dialect = DIALECTS[provider]
    assert dialect.reject(json.loads(dialect.request_fixture().read_text(encoding="utf-8"))) is None


def test_every_profile_has_fixtures() -> None:
    """Adding a provider means a profile plus fixtures: every profile is covered here."""
    assert set(DIALECTS) == set(PROFILES)
    for dialect in DIALECTS.values():
        assert dialect.request_fixture().is_file()
        for stream in dialect.streams:
            assert (FIXTURES / stream).is_file()


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://api.openai.com/v1", "openai"),
        ("https://openrouter.ai/api/v1", "openrouter"),
        ("http://localhost:11434/v1", "ollama"),
        ("http://ollama.lan:8080/v1", "ollama"),
        ("https://api.deepseek.com", "deepseek"),
        ("https://generativelanguage.googleapis.com/v1beta/openai/", "gemini"),
        ("https://api.groq.com/openai/v1", "groq"),
        ("https://api.mistral.ai/v1", "mistral"),
        ("http://127.0.0.1:8000/v1", "generic"),
    ],
)
def test_profile_from_the_base_url(url: str, name: str) -> None:
    """The profile follows the upstream host; C{PROVIDER} overrides it."""
    assert profile_for(url).name == name
    assert profile_for(url, "groq").name == "groq"
    assert profile_named("nonsense").name == "generic"


# Reasoning request shapes (H.4)


def thinking(kind: str, budget: int | None = None) -> Thinking:
    return Thinking(kind, budget_tokens=budget)


ADAPTIVE = thinking("adaptive")
OFF = thinking("disabled")


@pytest.mark.parametrize(
    ("model", "wish", "effort", "expected"),
    [
        ("o3", OFF, None, {}),
        ("o4-mini", OFF, None, {}),
        ("gpt-5", OFF, None, {"reasoning_effort": "minimal"}),
        ("gpt-5-mini", OFF, None, {"reasoning_effort": "minimal"}),
        ("gpt-5.1", OFF, None, {"reasoning_effort": "none"}),
        ("openai/gpt-5.2", OFF, None, {"reasoning_effort": "none"}),
        ("gpt-5-pro", OFF, None, {}),
        ("gpt-5-pro", ADAPTIVE, "low", {"reasoning_effort": "high"}),
        ("o3", ADAPTIVE, "max", {"reasoning_effort": "high"}),
        ("gpt-5.1", ADAPTIVE, "xhigh", {"reasoning_effort": "high"}),
        ("gpt-5.2", ADAPTIVE, "max", {"reasoning_effort": "xhigh"}),
        ("gpt-5.1-codex-max", ADAPTIVE, "xhigh", {"reasoning_effort": "xhigh"}),
        ("gpt-5", thinking("enabled", 2000), None, {"reasoning_effort": "low"}),
        ("gpt-5", thinking("enabled", 20000), None, {"reasoning_effort": "high"}),
        ("gpt-5.1", ADAPTIVE, None, {}),
        ("gpt-5.1", None, None, {}),
        ("gpt-4o", ADAPTIVE, "high", {}),
        ("gpt-4.1", OFF, None, {}),
    ],
)
def test_openai_reasoning_effort_per_model(model: str, wish: Thinking | None, effort: str | None,
                                           expected: dict[str, Any]) -> None:
    """Thinking off never sends C{minimal} to the o-series; levels are clamped to each model's list."""
    assert openai_reasoning(model, wish, OutputConfig(effort=effort)) == expected


@pytest.mark.parametrize(
    ("wish", "effort", "expected"),
    [
        (None, None, {}),
        (OFF, None, {"thinking": {"type": "disabled"}}),
        (ADAPTIVE, None, {"thinking": {"type": "enabled"}}),
        (ADAPTIVE, "low", {"thinking": {"type": "enabled"}, "reasoning_effort": "high"}),
        (ADAPTIVE, "xhigh", {"thinking": {"type": "enabled"}, "reasoning_effort": "max"}),
        (thinking("enabled", 8000), None, {"thinking": {"type": "enabled"}, "reasoning_effort": "high"}),
        (thinking("enabled", 32000), None, {"thinking": {"type": "enabled"}, "reasoning_effort": "max"}),
    ],
)
def test_deepseek_thinking_and_effort(wish: Thinking | None, effort: str | None, expected: dict[str, Any]) -> None:
    """DeepSeek: C{thinking} enabled/disabled plus C{reasoning_effort} high or max."""
    assert deepseek_reasoning("deepseek-chat", wish, OutputConfig(effort=effort)) == expected


@pytest.mark.parametrize(
    ("model", "wish", "effort", "expected"),
    [
        ("openai/gpt-oss-120b", ADAPTIVE, "medium", {"reasoning_effort": "medium"}),
        ("openai/gpt-oss-20b", ADAPTIVE, "max", {"reasoning_effort": "high"}),
        ("openai/gpt-oss-120b", OFF, None, {}),
        ("qwen/qwen3-32b", ADAPTIVE, "high", {"reasoning_format": "parsed", "reasoning_effort": "default"}),
        ("qwen/qwen3-32b", OFF, None, {"reasoning_format": "parsed", "reasoning_effort": "none"}),
        ("qwen/qwen3-32b", None, None, {"reasoning_format": "parsed"}),
        ("llama-3.3-70b-versatile", ADAPTIVE, "high", {}),
        ("moonshotai/kimi-k2-instruct", OFF, None, {}),
    ],
)
def test_groq_reasoning_only_for_models_that_take_it(model: str, wish: Thinking | None, effort: str | None,
                                                     expected: dict[str, Any]) -> None:
    """Groq answers 400 to reasoning fields a model does not know; gpt-oss has no C{reasoning_format}."""
    assert groq_reasoning(model, wish, OutputConfig(effort=effort)) == expected


@pytest.mark.parametrize(
    ("model", "wish", "effort", "expected"),
    [
        ("gemini-2.5-flash", OFF, None, {"reasoning_effort": "none"}),
        ("gemini-3-flash-preview", OFF, None, {"reasoning_effort": "minimal"}),
        ("gemini-3-pro-preview", OFF, None, {"reasoning_effort": "low"}),
        ("gemini-3-pro-preview", ADAPTIVE, "max", {"reasoning_effort": "high"}),
        ("gemini-2.5-pro", thinking("enabled", 10000), None, {"reasoning_effort": "medium"}),
        ("gemini-3-pro-preview", ADAPTIVE, None, {}),
    ],
)
def test_gemini_reasoning_effort(model: str, wish: Thinking | None, effort: str | None,
                                 expected: dict[str, Any]) -> None:
    """Gemini: C{reasoning_effort}; only 2.5 Flash can stop thinking."""
    assert gemini_reasoning(model, wish, OutputConfig(effort=effort)) == expected


def test_ollama_and_openrouter_reasoning() -> None:
    """Ollama maps every level itself; OpenRouter gets its C{reasoning} object (effort or budget, not both)."""
    assert ollama_reasoning("qwen3:32b", OFF, None) == {"reasoning_effort": "none"}
    assert ollama_reasoning("qwen3:32b", ADAPTIVE, OutputConfig(effort="max")) == {"reasoning_effort": "max"}
    assert ollama_reasoning("qwen3:32b", None, None) == {}
    assert openrouter_reasoning("x/y", OFF, None) == {"reasoning": {"effort": "none"}}
    assert openrouter_reasoning("x/y", thinking("enabled", 5000), None) == {"reasoning": {"max_tokens": 5000}}
    assert openrouter_reasoning("x/y", ADAPTIVE, None) == {"reasoning": {"enabled": True}}


def test_ollama_model_without_thinking_is_learned() -> None:
    """Ollama's 400 for a model without thinking drops the reasoning field for that model (then retried)."""
    body = {"model": "llama3.1:8b", "reasoning_effort": "medium", "max_tokens": 10}
    fix = fix_for_error(body, '"llama3.1:8b" does not support thinking')
    assert fix is not None and fix.apply(body) == {"model": "llama3.1:8b", "max_tokens": 10}
    assert fix_for_error(body, 'think value "medium" is not supported for this model') is not None


# Request fields per profile (H.1)


def test_ollama_never_gets_tool_choice() -> None:
    """Ollama ignores C{tool_choice} and C{parallel_tool_calls}: neither is sent; C{max_tokens} is kept."""
    tools = [{"name": "Bash", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}]
    body = simple([{"role": "user", "content": "hi"}], tools=tools,
                  tool_choice={"type": "any", "disable_parallel_tool_use": True})
    data = converted(body, "ollama", "qwen3:32b")
    assert not {"tool_choice", "parallel_tool_calls", "max_completion_tokens"} & set(data)
    assert data["max_tokens"] == 4096
    openai = converted(body, "openai", "gpt-5.1")
    assert (openai["tool_choice"], openai["parallel_tool_calls"]) == ("required", False)


@pytest.mark.parametrize(("provider", "field"), [("openai", "prompt_cache_key"), ("openrouter", "session_id")])
def test_session_id_goes_in_the_provider_field(provider: str, field: str) -> None:
    """Claude Code's session header becomes C{prompt_cache_key} (OpenAI) or C{session_id} (OpenRouter), cleaned."""
    body = simple([{"role": "user", "content": "hi"}])
    assert converted(body, provider, "gpt-5.1")[field] == SESSION
    assert converted(body, provider, "gpt-5.1", session=" a b\u00e9\n" + "x" * 300)[field] == "ab" + "x" * (
        PROFILES[provider].session_limit - 2)
    assert field not in converted(body, provider, "gpt-5.1", session=None)
    for other in set(PROFILES) - {"openai", "openrouter"}:
        data = converted(body, other, "m")
        assert not {"prompt_cache_key", "session_id"} & set(data), other


def test_openrouter_keeps_cache_control_only_for_claude() -> None:
    """Anthropic models on OpenRouter keep the breakpoints (system as parts); other models get plain text."""
    body = claude_code_turn(DIALECTS["openrouter"].carrier)
    other = converted(body, "openrouter", "deepseek/deepseek-v3.2")
    assert "cache_control" not in json.dumps(other)
    assert isinstance(other["messages"][0]["content"], str)
    claude = converted(body, "openrouter", "anthropic/claude-opus-4.5")
    assert [p.get("cache_control") for p in claude["messages"][0]["content"]] == [{"type": "ephemeral"}] * 2


def test_at_most_four_breakpoints_oldest_dropped() -> None:
    """More than four markers: the oldest lose theirs (Anthropic's limit)."""
    marked = [ChatMessage("user", [TextPart(str(i), cache_control={"type": "ephemeral"})]) for i in range(6)]
    kept = [part.cache_control is not None for m in cap_cache_breakpoints(marked) for part in m.content or []
            if isinstance(part, TextPart)]
    assert kept == [False, False, True, True, True, True]


# Message shapes per profile (H.2 step 6, G.7)


def test_deepseek_and_mistral_merge_consecutive_roles() -> None:
    """Consecutive user (or assistant) messages become one for providers that require alternation."""
    body = simple([{"role": "user", "content": "one"}, {"role": "user", "content": "two"},
                   {"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"},
                   {"role": "user", "content": "three"}])
    for provider in ("deepseek", "mistral"):
        assert [(m["role"], m["content"]) for m in converted(body, provider, "m")["messages"]] == [
            ("user", "one\n\ntwo"), ("assistant", "a\n\nb"), ("user", "three")]
    assert len(converted(body, "openai", "gpt-5.1")["messages"]) == 5


def test_merged_messages_keep_parts_calls_and_reasoning() -> None:
    """Merging keeps image parts, tool calls and reasoning of both messages."""
    image = ImagePart({"url": "data:image/png;base64,AA"})
    users = merge_roles([ChatMessage("user", "look"), ChatMessage("user", [image])])
    assert users == [ChatMessage("user", [TextPart("look"), image])]
    first = ChatMessage("assistant", "a", reasoning_content="r1")
    second = ChatMessage("assistant", None, reasoning_content="r2", reasoning_details=[{"type": "reasoning.summary"}])
    assert merge_roles([first, second]) == [ChatMessage("assistant", "a", reasoning_content="r1r2",
                                                        reasoning_details=[{"type": "reasoning.summary"}])]


def test_mistral_never_gets_a_user_message_right_after_tool_results() -> None:
    """Claude Code's reminder text after results joins the last result; an image gets a bridging turn."""
    tool = ChatMessage("tool", "ok", tool_call_id="abcdefghi")
    folded = bridge_tool_results([tool, ChatMessage("user", [TextPart("<system-reminder>x</system-reminder>")])])
    assert folded == [ChatMessage("tool", "ok\n\n<system-reminder>x</system-reminder>", tool_call_id="abcdefghi")]
    image = ChatMessage("user", [ImagePart({"url": "data:image/png;base64,AA"})])
    assert bridge_tool_results([tool, image]) == [tool, ChatMessage("assistant", BRIDGE), image]
    body = simple(call_turn("sig", "toolu_01") + [{"role": "user", "content": "next"}])
    roles = [m["role"] for m in converted(body, "mistral", "devstral-medium-2507")["messages"]]
    assert roles == ["user", "assistant", "tool"]


def test_deepseek_gets_no_image_parts() -> None:
    """DeepSeek reads text only: images become a note instead of an C{image_url} part it rejects."""
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}}
    data = converted(simple([{"role": "user", "content": [image, {"type": "text", "text": "what is this?"}]}]),
                     "deepseek", "deepseek-chat")
    assert data["messages"] == [{"role": "user",
                                 "content": "[image omitted: this provider does not read images]\n\nwhat is this?"}]


# Reasoning replay (H.4)


def replayed(provider: str, carrier: Carrier, *calls: str, model: str | None = None) -> dict[str, Any]:
    """The assistant message sent back to C{provider} for a turn signed with C{carrier}."""
    data = converted(simple(call_turn(encode_carrier(carrier), *calls)), provider, model or carrier.model)
    return next(m for m in data["messages"] if m["role"] == "assistant")


def test_openrouter_replays_details_and_text() -> None:
    """OpenRouter gets the details back (unsigned Anthropic text dropped, other formats kept) and the text."""
    details = [
        {"type": "reasoning.text", "text": "a", "signature": "s1", "format": "anthropic-claude-v1", "index": 0},
        {"type": "reasoning.text", "text": "b", "index": 1},
        {"type": "reasoning.text", "text": "c", "format": "google-gemini-v1", "index": 2},
        {"type": "reasoning.encrypted", "data": "opaque", "format": "openai-responses-v1", "index": 3},
    ]
    message = replayed("openrouter", Carrier("openrouter", "x/y", kind="rd", details=details), "toolu_01")
    assert message["reasoning_details"] == [details[0], details[2], details[3]]
    assert message["reasoning"] == THINKING


def test_gemini_replays_signatures_of_its_own_model_only() -> None:
    """Signatures go back on their calls for the model that made them; otherwise the first call gets the bypass."""
    carrier = Carrier("gemini", "gemini-3-pro-preview", kind="gs", signatures={READ_ID: GEMINI_SIGNATURE})
    message = replayed("gemini", carrier, BASH_ID, READ_ID)
    assert [c.get("extra_content") for c in message["tool_calls"]] == [
        {"google": {"thought_signature": SIGNATURE_BYPASS}}, {"google": {"thought_signature": GEMINI_SIGNATURE}}]
    other_model = replayed("gemini", carrier, READ_ID, model="gemini-3-flash-preview")
    assert other_model["tool_calls"][0]["extra_content"] == {"google": {"thought_signature": SIGNATURE_BYPASS}}
    foreign = replayed("gemini", Carrier("openrouter", "gemini-3-pro-preview"), READ_ID)
    assert foreign["tool_calls"][0]["extra_content"] == {"google": {"thought_signature": SIGNATURE_BYPASS}}
    assert "extra_content" not in json.dumps(replayed("openrouter", carrier, READ_ID, model="x/y"))


@pytest.mark.parametrize("provider", ["groq", "openai", "mistral", "generic"])
def test_no_reasoning_replayed_where_the_provider_takes_none(provider: str) -> None:
    """Groq rejects reasoning fields on messages; OpenAI, Mistral and generic servers get none either."""
    message = replayed(provider, Carrier(provider, "m", kind="rd", details=[{"type": "reasoning.summary"}]),
                       "toolu_01")
    assert not {"reasoning", "reasoning_content", "reasoning_details"} & set(message)
    assert "extra_content" not in json.dumps(message)


def test_gemini_list_wrapped_error_is_read() -> None:
    """Gemini's compatibility endpoint wraps errors in a list: the message still reaches the client."""
    body = json.dumps([{"error": {"code": 400, "message": "Function call is missing a thought_signature",
                                  "status": "INVALID_ARGUMENT"}}]).encode()
    error = from_upstream(400, body, {}, "generativelanguage.googleapis.com")
    assert error.message == "generativelanguage.googleapis.com: Function call is missing a thought_signature"


def test_generic_profile_sends_the_plain_openai_body() -> None:
    """The generic profile adds nothing to the OpenAI dialect."""
    body = simple([{"role": "user", "content": "hi"}])
    assert to_dict(convert_request(parse_messages_request(body), "m", PROFILES["generic"]).request) == {
        "model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True,
        "stream_options": {"include_usage": True}, "max_tokens": 4096}


# The README's proxy.env examples

HEADINGS = {"OpenAI": "openai", "OpenRouter": "openrouter", "Ollama": "ollama", "DeepSeek": "deepseek",
            "Gemini": "gemini", "Groq": "groq", "Mistral": "mistral", "Other OpenAI-compatible servers": "generic"}


def test_readme_examples_load_and_pick_their_profile(tmp_path: Path) -> None:
    """Each C{proxy.env} example of the README's Providers section is valid and selects that provider."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Providers\n", 1)[1].split("\n## ", 1)[0]
    found = {}
    for part in section.split("\n### ")[1:]:
        heading, _, text = part.partition("\n")
        example = text.split("```sh\n", 1)[1].split("```", 1)[0]
        env_file = tmp_path / f"{HEADINGS[heading]}.env"
        env_file.write_text(example, encoding="utf-8")
        settings = load_settings({}, env_file=str(env_file), cwd=tmp_path, home=tmp_path)
        found[heading] = profile_for(settings.openai_base_url, settings.provider).name
        assert settings.opus_model and settings.sonnet_model and settings.haiku_model
    assert found == HEADINGS


# Gemini's schema subset (G.5, H.3)


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"$schema": "x", "type": "object", "properties": {}, "additionalProperties": False}, {"type": "object"}),
        ({"properties": {"a": {"type": "string", "format": "uri"}, "b": {"type": "string", "format": "date-time"}},
          "required": ["a", "gone"]},
         {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string", "format": "date-time"}},
          "required": ["a"]}),
        ({"type": "object", "properties": {"n": {"$ref": "#/definitions/Node"}},
          "definitions": {"Node": {"type": "object", "description": "a node",
                                   "properties": {"next": {"$ref": "#/definitions/Node"}}}}},
         {"type": "object", "properties": {"n": {"type": "object", "description": "a node",
                                                 "properties": {"next": {"type": "object"}}}}}),
        ({"type": "object", "properties": {"v": {"oneOf": [{"type": "integer", "exclusiveMinimum": 0},
                                                           {"const": "auto"}]}}},
         {"type": "object", "properties": {"v": {"anyOf": [{"type": "integer"},
                                                           {"enum": ["auto"], "type": "string"}]}}}),
        ({"type": "object", "allOf": [{"properties": {"a": {"type": "number"}}, "required": ["a"]},
                                      {"properties": {"b": {"type": ["boolean", "null"]}}}]},
         {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "boolean", "nullable": True}},
          "required": ["a"]}),
        ({"type": "object", "properties": {"t": {"type": "array", "prefixItems": [{"type": "string"}]},
                                           "u": {"type": "array"}, "e": {"enum": [1, 2]}}},
         {"type": "object", "properties": {"t": {"type": "array", "items": {"type": "string"}},
                                           "u": {"type": "array", "items": {"type": "string"}},
                                           "e": {"type": "integer"}}}),
        ({"type": "object", "properties": {"o": {"anyOf": [{"type": "string", "maxLength": 9}, {"type": "null"}]},
                                           "p": {"oneOf": [{"type": "null"}, {"type": "string"}, {"type": "number"}]}}},
         {"type": "object", "properties": {"o": {"type": "string", "maxLength": 9, "nullable": True},
                                           "p": {"nullable": True, "anyOf": [{"type": "string"},
                                                                             {"type": "number"}]}}}),
        ({"type": "object", "properties": {"any": {}, "obj": {"properties": {"x": {"type": "string"}}}}},
         {"type": "object", "properties": {"any": {"type": "string"},
                                           "obj": {"type": "object", "properties": {"x": {"type": "string"}}}}}),
    ],
)
def test_gemini_schema_subset(schema: dict[str, Any], expected: dict[str, Any]) -> None:
    """$ref inlined (recursion cut), oneOf/allOf/const/type lists rewritten, unknown keywords and formats dropped."""
    original = json.dumps(schema)
    assert gemini_schema(schema) == expected
    assert json.dumps(schema) == original  # the client's schema is not modified

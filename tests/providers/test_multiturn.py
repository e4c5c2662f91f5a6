"""Two Claude Code turns per provider through the real Site and a fake upstream, over sockets.

Turn 1: the provider answers with its recorded-shape stream (reasoning, where it has any, and a tool
call). Turn 2 is what Claude Code sends next: the assistant turn exactly as it received it (thinking
blocks with their signatures, text, tool calls) and the tool results plus a system reminder. The fake
upstream validates every request as the provider does (L{tests.providers.dialects}) and answers a
request missing the provider's replay field with that provider's real 400, so turn 2 only succeeds
when ccproxy sends back what the provider needs.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.web.client import HTTPConnectionPool

from ccproxy.grammar import check_events, final_message
from ccproxy.sse import SSEParser
from tests.fake_upstream import Reply, text_reply
from tests.providers.dialects import DIALECTS, FIXTURES, SESSION

FINAL = "The SSE test fails because CRLF is not split."
REMINDER = "<system-reminder>\nThe task tools haven't been used recently.\n</system-reminder>"
REASONING_FIELDS = ("reasoning", "reasoning_content", "reasoning_details")


def first_turn() -> dict[str, Any]:
    """Claude Code's first request of the session: its system prompt and tools, one user message."""
    recorded = json.loads((FIXTURES / "anthropic" / "cc_provider_turn.json").read_text(encoding="utf-8"))
    body = {key: value for key, value in recorded.items() if key != "messages"}
    body["messages"] = [recorded["messages"][0]]
    return body


def second_turn(first: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """What Claude Code sends after running the tools: the answer replayed as received, then the results."""
    calls = [block for block in answer["content"] if block["type"] == "tool_use"]
    results = [{"type": "tool_result", "tool_use_id": call["id"], "content": f"ran {call['name']}: 1 failed"}
               for call in calls]
    messages = first["messages"] + [
        {"role": "assistant", "content": answer["content"]},
        {"role": "user", "content": [*results, {"type": "text", "text": REMINDER}]},
    ]
    return {**first, "messages": messages}


async def send(url: str, body: dict[str, Any]) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
    """POST a streaming request as Claude Code does; the status and the parsed events."""
    from twisted.internet import reactor

    pool = HTTPConnectionPool(reactor, persistent=False)
    headers: dict[bytes | str, bytes | str] = {"content-type": "application/json",
                                               "anthropic-version": "2023-06-01", "x-claude-code-session-id": SESSION}
    response = await treq.post(url + "/v1/messages?beta=true", data=json.dumps(body).encode(), headers=headers,
                               pool=pool)
    raw = await response.content()
    if response.code != 200:
        return response.code, [("error", json.loads(raw))]
    parser = SSEParser()
    events = [(event.event or "", json.loads(event.data)) for event in parser.feed(raw) + parser.close()]
    return response.code, events


def assistant_with_calls(body: dict[str, Any]) -> dict[str, Any]:
    found: list[dict[str, Any]] = [m for m in body["messages"] if m.get("role") == "assistant" and m.get("tool_calls")]
    return found[-1]


def thinking_text(answer: dict[str, Any]) -> str:
    return "".join(block["thinking"] for block in answer["content"] if block["type"] == "thinking")


def check_replay(provider: str, sent: dict[str, Any], answer: dict[str, Any]) -> None:
    """What each provider must have got back in turn 2."""
    message = assistant_with_calls(sent)
    if provider == "deepseek":
        assert message["reasoning_content"] == thinking_text(answer) != ""
    elif provider == "ollama":
        assert message["reasoning"] == thinking_text(answer) != ""
    elif provider == "openrouter":
        assert message["reasoning"] == thinking_text(answer)
        assert [d["type"] for d in message["reasoning_details"]] == ["reasoning.text"]
        assert message["reasoning_details"][0]["signature"].startswith("ErUBCkYIBxgC")
        assert message["reasoning_details"][0]["text"] == thinking_text(answer)
    elif provider == "gemini":
        signatures = [(c.get("extra_content") or {}).get("google", {}).get("thought_signature")
                      for c in message["tool_calls"]]
        assert signatures == ["CiwBVKhc7pT0m3b5rG9Z2xQ8yN1vL4kD7wE0sA6fJ3hU9iO2pC5nM8qR1tW4zY", None]
    else:
        assert not set(REASONING_FIELDS) & set(message), provider
    if provider == "openai":
        assert sent["prompt_cache_key"] == SESSION
    if provider == "openrouter":
        assert sent["session_id"] == SESSION
    if provider == "mistral":
        assert [m["role"] for m in sent["messages"]][-2:] == ["assistant", "tool"]
        assert REMINDER in sent["messages"][-1]["content"]


@pytest.mark.parametrize("provider", sorted(DIALECTS))
@pytest_twisted.ensureDeferred
async def test_two_turns_with_the_providers_replay_field(harness: Any, provider: str) -> None:
    """Turn 1 gives reasoning and a tool call; turn 2 carries back exactly what the provider requires."""
    dialect = DIALECTS[provider]
    stream = (FIXTURES / dialect.turn).read_bytes()

    def upstream(body: Any) -> Reply:
        rejected = dialect.reject(body)
        if rejected is not None:
            return rejected
        if any(m.get("role") == "tool" for m in body["messages"]):
            return text_reply(FINAL)
        return Reply(chunks=[stream], done=False)  # the transcript ends with its own [DONE]

    model = dialect.model
    url = harness.start(upstream, provider=provider, opus_model=model, sonnet_model=model, haiku_model=model)
    first = first_turn()
    status, events = await send(url, first)
    assert status == 200, events
    check_events(events)
    answer = final_message(events)
    assert answer["stop_reason"] == "tool_use"

    status, events = await send(url, second_turn(first, answer))
    assert status == 200, events
    check_events(events)
    assert final_message(events)["content"] == [{"type": "text", "text": FINAL}]
    received = [r.body for r in harness.upstream.received]
    assert len(received) == 2, "a request was rejected and retried"
    check_replay(provider, received[1], answer)


MISSING = {
    "deepseek": ("reasoning_content", "The `reasoning_content` in the thinking mode must be passed back to the API."),
    "gemini": ("extra_content", "Function call is missing a thought_signature in functionCall parts."),
    "openrouter": ("reasoning_details", "Expected `thinking` or `redacted_thinking`, but found `tool_use`."),
}


@pytest.mark.parametrize("provider", sorted(MISSING))
def test_fake_upstream_rejects_a_turn_without_the_replay_field(provider: str) -> None:
    """The rule the multi-turn test relies on: without the field the provider answers its real 400."""
    dialect = DIALECTS[provider]
    body = json.loads(dialect.request_fixture().read_text(encoding="utf-8"))
    assert dialect.reject(body) is None
    field, wording = MISSING[provider]
    for message in body["messages"]:
        message.pop(field, None)
        for call in message.get("tool_calls") or []:
            call.pop(field, None)
    rejected = dialect.reject(body)
    assert rejected is not None and rejected.status == 400
    assert wording in json.dumps(rejected.body)


@pytest_twisted.ensureDeferred
async def test_ollama_model_without_thinking_is_retried_without_reasoning(harness: Any) -> None:
    """Ollama answers 400 to C{reasoning_effort} for a model without thinking; ccproxy drops it and retries."""

    def upstream(body: Any) -> Reply:
        if "reasoning_effort" in body:
            return Reply(status=400, body={"error": {"message": '"llama3.1:8b" does not support thinking',
                                                     "type": "invalid_request_error", "param": None, "code": None}})
        return text_reply("Hello.")

    url = harness.start(upstream, provider="ollama", opus_model="llama3.1:8b", sonnet_model="llama3.1:8b",
                        haiku_model="llama3.1:8b")
    for _ in range(2):
        status, events = await send(url, first_turn())
        assert status == 200, events
        assert final_message(events)["content"] == [{"type": "text", "text": "Hello."}]
    sent = [r.body for r in harness.upstream.received]
    assert ["reasoning_effort" in body for body in sent] == [True, False, False]  # learned once

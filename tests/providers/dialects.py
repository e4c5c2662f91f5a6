"""Each provider's dialect as the tests know it: models, recorded-shape streams, and the 400s it answers.

A L{Dialect} ties a profile to its fixtures under C{tests/fixtures/} and to a C{reject} function that plays the
provider's request validation: it returns the provider's real error reply (status, body and wording as documented in
PROTOCOL.md G, or reported in the wild) for a body the provider would refuse, and C{None} for a body it accepts. The
fake upstream in the multi-turn tests answers with it, so a request ccproxy shapes wrongly fails as it would for real.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from attrs import frozen

from ccproxy.convert.carrier import Carrier
from tests.fake_upstream import Reply

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SESSION = "8f111ec3-b79f-443d-a1d1-4fcfa938a0cc"
# The two calls of the assistant turn in anthropic/cc_provider_turn.json.
BASH_ID, READ_ID = "toolu_01QkX7Ah3mPzR9sT2vWb5nDe", "toolu_01RnY8Bi4nQaS0tU3wXc6oEf"
THINKING = "Run the failing test first, then read the screenshot of the error."
ANTHROPIC_SIGNATURE = ("ErUBCkYIBxgCKkCn4wU2bVq1m9kR0p3zYQm8sYt1H5dJx7aL0cF2gN6eK4iV9uW3oP8rT5yS1zQ0xM2nB7vC6lA4jD9hE3fG2"
                       "kLsEgwHk2yq")
GEMINI_SIGNATURE = "CiwBVKhc7pT0m3b5rG9Z2xQ8yN1vL4kD7wE0sA6fJ3hU9iO2pC5nM8qR1tW4zY"

Reject = Callable[[Any], "Reply | None"]


def error(status: int, message: str, **fields: Any) -> Reply:
    """An OpenAI-style error reply."""
    return Reply(status=status, body={"error": {"message": message, **fields}})


def messages(body: Any) -> list[dict[str, Any]]:
    return list(body.get("messages", [])) if isinstance(body, dict) else []


def calls_of(body: Any) -> list[dict[str, Any]]:
    return [m for m in messages(body) if m.get("role") == "assistant" and m.get("tool_calls")]


# -- the providers' validations ----------------------------------------------------------------------------------


def openai_rejects(body: Any) -> Reply | None:
    """OpenAI (a reasoning model): max_tokens, unknown message fields, ids over 40 characters."""
    if "max_tokens" in body:
        return error(400, "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                     "'max_completion_tokens' instead.", type="invalid_request_error", param="max_tokens",
                     code="unsupported_parameter")
    for index, message in enumerate(messages(body)):
        for name in ("reasoning_content", "reasoning", "reasoning_details", "cache_control"):
            if name in message:
                return error(400, f"Additional properties are not allowed ('{name}' was unexpected) - "
                             f"'messages.{index}'", type="invalid_request_error", param=f"messages.{index}")
        for call in message.get("tool_calls") or []:
            if len(call["id"]) > 40:
                return error(400, f"Invalid 'messages[{index}].tool_calls[0].id': string too long. Expected a string "
                             f"with maximum length 40, but got a string with length {len(call['id'])} instead.",
                             type="invalid_request_error", code="string_above_max_length")
    return None


def openrouter_rejects(body: Any) -> Reply | None:
    """OpenRouter serving Claude with thinking: the tool-call turn must come back with its signed reasoning."""
    raw = None
    for message in calls_of(body)[-1:]:  # the assistant turn the tool results answer
        details = message.get("reasoning_details") or []
        texts = [d for d in details if d.get("type") == "reasoning.text"]
        if any(not d.get("signature") for d in texts):
            raw = "messages.1.content.0: Invalid `signature` in `thinking` block"
        elif not details:
            raw = ("messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found `tool_use`. When "
                   "`thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding "
                   "the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks "
                   "from previous turns. To avoid this requirement, disable `thinking`. Please consult our "
                   "documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking")
    if raw is None:
        return None
    inner = '{"type":"error","error":{"type":"invalid_request_error","message":"' + raw.replace('"', '\\"') + '"}}'
    return Reply(status=400, body={"error": {"code": 400, "message": "Provider returned error",
                                             "metadata": {"raw": inner, "provider_name": "Anthropic"}}})


def deepseek_rejects(body: Any) -> Reply | None:
    """DeepSeek in thinking mode: reasoning_content after tool calls, alternating roles, text-only content."""
    previous = None
    for index, message in enumerate(messages(body)):
        role = message.get("role")
        if role == previous and role in ("user", "assistant"):
            return error(400, f"deepseek-reasoner does not support successive user or assistant messages "
                         f"(messages[{index - 1}] and messages[{index}] in your input). You should interleave the "
                         f"user/assistant messages in the message sequence.", type="invalid_request_error")
        previous = role
        content = message.get("content")
        if isinstance(content, list) and any(part.get("type") != "text" for part in content):
            return Reply(status=422, body={"error": {
                "message": f"Failed to deserialize the JSON body into the target type: messages[{index}]: unknown "
                           "variant `image_url`, expected `text`", "type": "invalid_request_error"}})
        if role == "assistant" and message.get("tool_calls") and "reasoning_content" not in message:
            return error(400, "The `reasoning_content` in the thinking mode must be passed back to the API.",
                         type="invalid_request_error", code="invalid_request_error")
    return None


def ollama_rejects(body: Any) -> Reply | None:
    """Ollama: history arguments must be JSON (it ignores tool_choice and unknown fields)."""
    import json

    for message in calls_of(body):
        for call in message["tool_calls"]:
            try:
                json.loads(call["function"]["arguments"])
            except ValueError:
                return error(400, "invalid tool call arguments", type="invalid_request_error")
    return None


def gemini_rejects(body: Any) -> Reply | None:
    """Gemini 3 (OpenAI compatibility): thought signatures on the current turn's calls, its schema subset."""
    for index, tool in enumerate(body.get("tools") or []):
        text = repr(tool["function"].get("parameters"))
        for keyword in ("additionalProperties", "$schema", "$ref", "exclusiveMinimum", "const"):
            if f"'{keyword}'" in text:
                return Reply(status=400, body=[{"error": {
                    "code": 400, "status": "INVALID_ARGUMENT",
                    "message": f"Invalid JSON payload received. Unknown name \"{keyword}\" at "
                               f"'tools[{index}].function_declarations[0].parameters': Cannot find field."}}])
    for message in calls_of(body):  # stricter than Gemini (the current turn only): fine for a fake
        calls = message["tool_calls"]
        if calls:
            signature = (calls[0].get("extra_content") or {}).get("google", {}).get("thought_signature")
            if not signature:
                name = calls[0]["function"]["name"]
                return Reply(status=400, body=[{"error": {
                    "code": 400, "status": "INVALID_ARGUMENT",
                    "message": "Function call is missing a thought_signature in functionCall parts. This is required "
                               "for tools to work correctly, and missing thought_signature may lead to degraded model "
                               f"performance. Additional data, function call `default_api:{name}` , position 2. Please "
                               "refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details."}}])
    return None


_GROQ_TOP = {"model", "messages", "stream", "stream_options", "max_completion_tokens", "max_tokens", "temperature",
             "top_p", "stop", "tools", "tool_choice", "parallel_tool_calls", "reasoning_effort", "reasoning_format",
             "include_reasoning", "response_format", "seed", "user", "n", "frequency_penalty", "presence_penalty"}
_GROQ_MESSAGE = {"system": {"role", "content", "name"}, "user": {"role", "content", "name"},
                 "assistant": {"role", "content", "name", "tool_calls"}, "tool": {"role", "content", "tool_call_id"}}


def groq_rejects(body: Any) -> Reply | None:
    """Groq validates strictly: unknown request or message properties are 400s; gpt-oss has no reasoning_format."""
    for name in body:
        if name not in _GROQ_TOP:
            return error(400, f"property '{name}' is unsupported", type="invalid_request_error")
    for index, message in enumerate(messages(body)):
        role = str(message.get("role"))
        for name in message:
            if name not in _GROQ_MESSAGE.get(role, set()):
                return error(400, f"'messages.{index}' : for 'role:{role}' the following must be satisfied"
                             f"[('messages.{index}' : property '{name}' is unsupported)]", type="invalid_request_error")
    if "reasoning_format" in body and "gpt-oss" in body.get("model", ""):
        return error(400, "`reasoning_format` is not supported with this model", type="invalid_request_error",
                     param="reasoning_format")
    return None


_MISTRAL_ID = re.compile(r"[a-zA-Z0-9]{9}")


def mistral_rejects(body: Any) -> Reply | None:
    """Mistral: no unknown fields (422), 9-character ids, no user message right after tool messages."""
    for name in ("stream_options", "max_completion_tokens", "reasoning_effort"):
        if name in body:
            return Reply(status=422, body={"object": "error", "message": {"detail": [{
                "type": "extra_forbidden", "loc": ["body", name], "msg": "Extra inputs are not permitted"}]},
                "type": "invalid_request_error", "param": None, "code": None})
    previous = None
    for message in messages(body):
        ids = [c["id"] for c in message.get("tool_calls") or []] + [message.get("tool_call_id") or "ok0000000"]
        for tool_id in ids:
            if not _MISTRAL_ID.fullmatch(tool_id):
                return error(400, f"Tool call id was {tool_id} but must be a-z, A-Z, 0-9, with a length of 9.",
                             type="invalid_request_error", code="3280")
        if message.get("role") == "user" and previous == "tool":
            return error(400, "Unexpected role 'user' after role 'tool'", type="invalid_request_message_order",
                         code="3230")
        previous = message.get("role")
    return None


def accepts_all(body: Any) -> Reply | None:
    """A generic OpenAI-compatible server (vLLM, llama.cpp, LM Studio) takes what OpenAI takes."""
    return None


@frozen
class Dialect:
    """One provider as the tests drive it.

    @ivar model: the upstream model the tests route to.
    @ivar turn: the stream that answers turn 1 (reasoning, when the provider has any, and a tool call).
    @ivar streams: every recorded-shape stream of that provider (C{turn} included).
    @ivar carrier: what the thinking block of C{anthropic/cc_provider_turn.json} carries for this provider.
    @ivar reject: the provider's validation (see the module docstring).
    """

    provider: str
    model: str
    turn: str
    streams: tuple[str, ...]
    carrier: Carrier
    reject: Reject

    def request_fixture(self) -> Path:
        return FIXTURES / self.provider / f"{self.provider}_request.json"


DIALECTS = {
    d.provider: d
    for d in (
        Dialect("openai", "gpt-5.1", "openai/openai_parallel_tools.sse",
                ("openai/openai_parallel_tools.sse", "openai/openai_text.sse"),
                Carrier("openai", "gpt-5.1"), openai_rejects),
        Dialect("openrouter", "anthropic/claude-sonnet-4.5", "openai/openrouter_reasoning_tool.sse",
                ("openai/openrouter_reasoning_tool.sse",),
                Carrier("openrouter", "anthropic/claude-sonnet-4.5", kind="rd", details=[
                    {"type": "reasoning.text", "text": THINKING, "signature": ANTHROPIC_SIGNATURE,
                     "format": "anthropic-claude-v1", "index": 0},
                    {"type": "reasoning.text", "text": " (cut off)", "format": "anthropic-claude-v1", "index": 1}]),
                openrouter_rejects),
        Dialect("ollama", "qwen3:32b", "openai/ollama_tool_calls.sse", ("openai/ollama_tool_calls.sse",),
                Carrier("ollama", "qwen3:32b"), ollama_rejects),
        Dialect("deepseek", "deepseek-chat", "deepseek/deepseek_tool_turn.sse",
                ("deepseek/deepseek_tool_turn.sse", "openai/deepseek_reasoning.sse"),
                Carrier("deepseek", "deepseek-chat"), deepseek_rejects),
        Dialect("gemini", "gemini-3-pro-preview", "openai/gemini_indexless_tools.sse",
                ("openai/gemini_indexless_tools.sse",),
                Carrier("gemini", "gemini-3-pro-preview", kind="gs", signatures={BASH_ID: GEMINI_SIGNATURE}),
                gemini_rejects),
        Dialect("groq", "openai/gpt-oss-120b", "groq/groq_tool_turn.sse", ("groq/groq_tool_turn.sse",),
                Carrier("groq", "openai/gpt-oss-120b"), groq_rejects),
        Dialect("mistral", "devstral-medium-2507", "mistral/mistral_tool_turn.sse", ("mistral/mistral_tool_turn.sse",),
                Carrier("mistral", "devstral-medium-2507"), mistral_rejects),
        Dialect("generic", "qwen3-coder-30b-a3b", "generic/generic_tool_turn.sse",
                ("generic/generic_tool_turn.sse", "openai/vllm_gateway_length.sse"),
                Carrier("generic", "qwen3-coder-30b-a3b"), accepts_all),
    )
}

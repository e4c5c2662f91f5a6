"""Anthropic Messages request -> OpenAI Chat Completions request (PROTOCOL.md H.1-H.3).

Pure: given a validated L{MessagesRequest}, the upstream model and the provider
L{Profile}, build the L{ChatRequest} plus the maps needed to read the answer (tool names
and ids). The message walk is in L{ccproxy.convert.messages}.
"""

from __future__ import annotations

from typing import Any

from attrs import frozen

from ccproxy.anthropic import (
    MessagesRequest,
    TextBlock,
    Tool,
    ToolChoice,
    ToolReferenceBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from ccproxy.convert.messages import convert_messages
from ccproxy.convert.names import ToolIdMap, ToolNameMap
from ccproxy.openai import ChatMessage, ChatRequest, ChatTool, FunctionDef
from ccproxy.providers import Profile

__all__ = ["Conversion", "convert_request", "system_text", "clean_schema", "BILLING_PREFIX"]

BILLING_PREFIX = "x-anthropic-billing-header:"
_MAX_STOP = 4


@frozen
class Conversion:
    """A converted request and what is needed to convert its answer back.

    @ivar dropped_tools: names of typed/server tools that have no OpenAI equivalent.
    """

    request: ChatRequest
    names: ToolNameMap
    ids: ToolIdMap
    dropped_tools: tuple[str, ...] = ()


def system_text(system: str | list[TextBlock] | None) -> str:
    """The top-level system prompt as one string, without the attribution line.

    Claude Code's first system block (C{x-anthropic-billing-header: …}) is billing
    metadata for Anthropic; upstream it would only cost tokens and break prompt caching.
    """
    if system is None:
        return ""
    if isinstance(system, str):
        blocks = [system]
    else:
        blocks = [block.text for block in system]
    kept = [text for text in blocks if text.strip() and not text.startswith(BILLING_PREFIX)]
    return "\n\n".join(kept)


def clean_schema(schema: dict[str, Any] | None) -> dict[str, Any]:
    """A tool's JSON schema as function C{parameters}: no C{$schema}, always an object."""
    cleaned = {k: v for k, v in (schema or {}).items() if k != "$schema"}
    cleaned.setdefault("type", "object")
    if cleaned["type"] == "object":
        cleaned.setdefault("properties", {})
    return cleaned


def _loaded_tools(request: MessagesRequest) -> set[str]:
    """Names of deferred tools the conversation loaded (C{tool_reference}) or used."""
    names = {request.tool_choice.name} if request.tool_choice and request.tool_choice.name else set()
    for message in request.messages:
        blocks = [] if isinstance(message.content, str) else list(message.content)
        for block in blocks:
            if isinstance(block, ToolResultBlock) and isinstance(block.content, list):
                blocks.extend(block.content)  # tool search answers inside tool results
            elif isinstance(block, ToolReferenceBlock):
                names.add(block.tool_name)
            elif isinstance(block, ToolUseBlock):
                names.add(block.name)
    return names


def _tools(
    tools: list[Tool], names: ToolNameMap, loaded: set[str]
) -> tuple[list[ChatTool], tuple[str, ...]]:
    """Function tools for the upstream, and the typed tools that have no such form.

    A C{defer_loading} tool is sent only once tool search has loaded it (or the model
    called it anyway); Claude Code's placeholder, which has no properties, never is.
    """
    converted = []
    dropped = []
    for tool in tools:
        if not tool.is_custom:
            dropped.append(tool.name)
            continue
        if tool.defer_loading:
            placeholder = not (tool.input_schema or {}).get("properties")
            if placeholder or tool.name not in loaded:
                continue
        converted.append(
            ChatTool(
                FunctionDef(
                    name=names.to_upstream(tool.name),
                    parameters=clean_schema(tool.input_schema),
                    description=tool.description or "",
                )
            )
        )
    return converted, tuple(dropped)


def _tool_choice(choice: ToolChoice, names: ToolNameMap) -> str | dict[str, Any]:
    if choice.type == "any":
        return "required"
    if choice.type == "tool" and choice.name:
        return {"type": "function", "function": {"name": names.to_upstream(choice.name)}}
    if choice.type == "none":
        return "none"
    return "auto"


def _all_tool_names(request: MessagesRequest) -> list[str]:
    names = [tool.name for tool in request.tools]
    if request.tool_choice is not None and request.tool_choice.name:
        names.append(request.tool_choice.name)
    for message in request.messages:
        if not isinstance(message.content, str):
            names.extend(getattr(block, "name", "") for block in message.content)
    return [name for name in names if name]


def convert_request(request: MessagesRequest, model: str, profile: Profile) -> Conversion:
    """Convert C{request} for C{model} on the provider described by C{profile}.

    The upstream is always streamed (with usage), even for a non-streaming client: the
    answer is then assembled locally, which avoids upstream idle timeouts and keeps one
    conversion path.
    """
    names = ToolNameMap.from_names(_all_tool_names(request))
    ids = ToolIdMap(profile.id_rule)
    messages: list[ChatMessage] = []
    system = system_text(request.system)
    if system:
        messages.append(ChatMessage("system", system))
    messages.extend(convert_messages(request.messages, profile, model, names, ids))

    tools, dropped = _tools(request.tools, names, _loaded_tools(request))
    fields: dict[str, Any] = {
        "stream": True,
        "stream_options": {"include_usage": True},
        profile.token_field: max(1, request.max_tokens),
    }
    if profile.sampling(model):
        fields["temperature"] = request.temperature
        fields["top_p"] = request.top_p
    if request.stop_sequences:
        fields["stop"] = request.stop_sequences[:_MAX_STOP]
    if tools:
        fields["tools"] = tools
        choice = request.tool_choice
        if choice is not None:
            fields["tool_choice"] = _tool_choice(choice, names)
            if choice.disable_parallel_tool_use and choice.type != "none":
                fields["parallel_tool_calls"] = False
    extra = profile.reasoning(model, request.thinking, request.output_config)
    if "reasoning_effort" in extra:
        fields["reasoning_effort"] = extra.pop("reasoning_effort")
    chat = ChatRequest(model=model, messages=messages, extra=extra, **fields)
    return Conversion(chat, names, ids, dropped)

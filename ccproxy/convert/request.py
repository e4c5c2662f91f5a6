"""Anthropic Messages request -> OpenAI Chat Completions request (PROTOCOL.md H.1-H.3).

Pure: given a validated L{MessagesRequest}, the upstream model and the provider
L{Profile}, build the L{ChatRequest} plus the maps needed to read the answer (tool names
and ids). The message walk is in L{ccproxy.convert.messages}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attrs import frozen

from ccproxy.anthropic import (
    MessagesRequest,
    TextBlock,
    Tool,
    ToolChoice,
)
from ccproxy.convert.dialect import adjust_messages
from ccproxy.convert.messages import walk_messages
from ccproxy.convert.names import ToolIdMap, ToolNameMap, upstream_tool_name
from ccproxy.convert.walks import WalkMemo
from ccproxy.openai import (
    ChatMessage,
    ChatRequest,
    ChatTool,
    ContentPart,
    FunctionDef,
    TextPart,
)
from ccproxy.providers import Profile
from ccproxy.schema import clean_schema

__all__ = ["Conversion", "convert_request", "system_text", "system_parts", "clean_schema", "BILLING_PREFIX"]

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


def _system_blocks(system: str | list[TextBlock] | None) -> list[TextBlock]:
    """The system prompt's blocks, without blank ones and the attribution line.

    Claude Code's first system block (C{x-anthropic-billing-header: …}) is billing
    metadata for Anthropic; upstream it would only cost tokens and break prompt caching.
    """
    if system is None:
        return []
    blocks = [TextBlock(system)] if isinstance(system, str) else system
    return [b for b in blocks if b.text.strip() and not b.text.startswith(BILLING_PREFIX)]


def system_text(system: str | list[TextBlock] | None) -> str:
    """The top-level system prompt as one string, without the attribution line."""
    return "\n\n".join(block.text for block in _system_blocks(system))


def system_parts(system: str | list[TextBlock] | None) -> list[ContentPart]:
    """The top-level system prompt as text parts that keep their C{cache_control}."""
    return [TextPart(block.text, cache_control=block.cache_control) for block in _system_blocks(system)]


def _chat_tool(tool: Tool, schema: Callable[[dict[str, Any] | None], dict[str, Any]]) -> ChatTool:
    """A function tool as the upstream gets it, from the tool alone and the profile's schema
    rewriter (so it can be remembered on the tool: L{Tool.converted}). Its name is mapped
    by L{upstream_tool_name}, as the request's L{ToolNameMap} maps it."""
    function = FunctionDef(
        name=upstream_tool_name(tool.name), parameters=schema(tool.input_schema), description=tool.description or ""
    )
    return ChatTool(function)


def _tools(tools: list[Tool], loaded: frozenset[str], profile: Profile) -> tuple[list[ChatTool], tuple[str, ...]]:
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
        converted.append(tool.converted(profile.schema, _chat_tool))
    return converted, tuple(dropped)


def _tool_choice(choice: ToolChoice, names: ToolNameMap) -> str | dict[str, Any]:
    if choice.type == "any":
        return "required"
    if choice.type == "tool" and choice.name:
        return {"type": "function", "function": {"name": names.to_upstream(choice.name)}}
    if choice.type == "none":
        return "none"
    return "auto"


def convert_request(
    request: MessagesRequest,
    model: str,
    profile: Profile,
    session_id: str | None = None,
    walks: WalkMemo | None = None,
) -> Conversion:
    """Convert C{request} for C{model} on the provider described by C{profile}.

    The upstream is always streamed (with usage where the provider takes
    C{stream_options}), even for a non-streaming client: the answer is then assembled
    locally, which avoids upstream idle timeouts and keeps one conversion path.

    @param session_id: Claude Code's C{X-Claude-Code-Session-Id} header, sent in the
        profile's session field (cache routing on OpenAI, sticky routing on OpenRouter).
    @param walks: the proxy's memo of message walks (L{ccproxy.convert.walks}): the walk
        resumes where the previous turn of the conversation ended.
    """
    ids = ToolIdMap(profile.id_rule)
    walked = walk_messages(request.messages, profile, model, ids, walks)
    chosen = [request.tool_choice.name] if request.tool_choice is not None and request.tool_choice.name else []
    mentioned = [tool.name for tool in request.tools] + chosen + list(walked.names)
    names = ToolNameMap.from_names(name for name in mentioned if name)
    messages: list[ChatMessage] = []
    if profile.cache_control(model):
        parts = system_parts(request.system)
        if parts:
            messages.append(ChatMessage("system", parts))
    else:
        system = system_text(request.system)
        if system:
            messages.append(ChatMessage("system", system))
    messages.extend(walked.messages)
    messages = adjust_messages(messages, profile, model)

    tools, dropped = _tools(request.tools, walked.loaded.union(chosen), profile)
    fields: dict[str, Any] = {"stream": True, profile.token_field: max(1, request.max_tokens)}
    if profile.stream_usage:
        fields["stream_options"] = {"include_usage": True}
    if profile.sampling(model):
        fields["temperature"] = request.temperature
        fields["top_p"] = request.top_p
    if request.stop_sequences:
        fields["stop"] = request.stop_sequences[:_MAX_STOP]
    if tools:
        fields["tools"] = tools
        choice = request.tool_choice
        if choice is not None and profile.tool_choice:
            fields["tool_choice"] = _tool_choice(choice, names)
        serial = choice is not None and choice.disable_parallel_tool_use and choice.type != "none"
        if serial and profile.parallel_tool_calls:
            fields["parallel_tool_calls"] = False
    extra = profile.reasoning(model, request.thinking, request.output_config)
    if "reasoning_effort" in extra:
        fields["reasoning_effort"] = extra.pop("reasoning_effort")
    extra.update(profile.session_fields(session_id))
    chat = ChatRequest(model=model, messages=messages, extra=extra, **fields)
    return Conversion(chat, names, ids, dropped)

"""Typed models of the Anthropic Messages API request (validated by L{ccproxy.validation}).

Free-form JSON (tool schemas, tool inputs, image sources) stays plain dicts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar, Union

from attrs import field, frozen

__all__ = [
    "RequestError", "TextBlock", "ImageBlock", "DocumentBlock", "SearchResultBlock",
    "ToolReferenceBlock", "ToolUseBlock", "ToolResultBlock", "ThinkingBlock",
    "RedactedThinkingBlock", "ServerToolBlock", "MidConvSystemBlock", "Block", "Message", "Tool", "ToolChoice",
    "Thinking", "OutputConfig", "MessagesRequest", "CountTokensRequest", "SERVER_TOOL_BLOCK_TYPES",
]

JSONObject = dict[str, Any]
_T = TypeVar("_T")


class RequestError(ValueError):
    """The client's request is invalid; the message says where and why."""


@frozen
class TextBlock:
    """A C{text} block."""

    text: str
    cache_control: JSONObject | None = None


@frozen
class ImageBlock:
    """An C{image} block; C{source} is C{{type: base64|url, ...}}."""

    source: JSONObject
    cache_control: JSONObject | None = None


@frozen
class DocumentBlock:
    """A C{document} block (PDF, plain text, nested content or URL)."""

    source: JSONObject
    title: str | None = None
    context: str | None = None
    cache_control: JSONObject | None = None


@frozen
class SearchResultBlock:
    """A C{search_result} block."""

    source: str
    title: str
    content: list[TextBlock] = field(factory=list)
    cache_control: JSONObject | None = None


@frozen
class ToolReferenceBlock:
    """A C{tool_reference} block: tool search loaded a deferred tool."""

    tool_name: str
    cache_control: JSONObject | None = None


@frozen
class ToolUseBlock:
    """A C{tool_use} block from an earlier assistant turn."""

    id: str
    name: str
    input: JSONObject
    cache_control: JSONObject | None = None


@frozen
class ThinkingBlock:
    """A C{thinking} block; C{signature} may be our carrier or a foreign one."""

    thinking: str
    signature: str = ""


@frozen
class RedactedThinkingBlock:
    """A C{redacted_thinking} block, opaque."""

    data: str


@frozen
class ServerToolBlock:
    """A server-tool artefact (C{server_tool_use}, C{web_search_tool_result}, ...).

    Such blocks only exist in histories from the real Anthropic API; they are kept raw so
    the converter can render or drop them.
    """

    type: str
    raw: JSONObject


@frozen
class ToolResultBlock:
    """A C{tool_result} block; C{content} is a string or a list of blocks."""

    tool_use_id: str
    content: str | list[Block] | None = None
    is_error: bool = False
    cache_control: JSONObject | None = None


@frozen
class MidConvSystemBlock:
    """The SDK's block form of a mid-conversation system message (PROTOCOL.md A.3, A.4).

    Converted as a C{role: system} message at the place of the message holding it.
    """

    content: str | list[TextBlock] | None = None


Block = Union[
    TextBlock,
    ImageBlock,
    DocumentBlock,
    SearchResultBlock,
    ToolReferenceBlock,
    ToolUseBlock,
    ToolResultBlock,
    ThinkingBlock,
    RedactedThinkingBlock,
    ServerToolBlock,
    MidConvSystemBlock,
]


@frozen
class Message:
    """One entry of C{messages}; C{system} is Claude Code's mid-conversation system."""

    role: Literal["user", "assistant", "system"]
    content: str | list[Block]


@frozen
class Tool:
    """A tool definition; C{type} is set for Anthropic-defined (typed) tools."""

    name: str
    description: str | None = None
    input_schema: JSONObject | None = None
    type: str | None = None
    defer_loading: bool = False
    # What the conversion made of this tool, by what it depended on besides the tool: a tool
    # is shared by every request that resends it (ccproxy.parts), so it is converted once.
    _converted: dict[Any, Any] = field(factory=dict, init=False, eq=False, repr=False)

    def converted(self, key: Any, convert: Callable[[Tool, Any], _T]) -> _T:
        """C{convert(self, key)}, made once per C{key}. Shared by later requests: never edit it."""
        found: _T | None = self._converted.get(key)
        if found is None:
            found = self._converted[key] = convert(self, key)
        return found

    @property
    def is_custom(self) -> bool:
        """Whether this is a plain function tool (not a typed/server tool)."""
        return self.type in (None, "custom")


@frozen
class ToolChoice:
    """C{tool_choice}: C{auto}, C{any}, C{tool} (with C{name}) or C{none}."""

    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool = False


@frozen
class Thinking:
    """C{thinking}: C{enabled} (with a budget), C{adaptive} or C{disabled}."""

    type: str
    budget_tokens: int | None = None
    display: str | None = None


@frozen
class OutputConfig:
    """C{output_config}: effort and structured-output format."""

    effort: str | None = None
    format: JSONObject | None = None


@frozen
class CountTokensRequest:
    """The body of C{POST /v1/messages/count_tokens}."""

    model: str
    messages: list[Message]
    system: str | list[TextBlock] | None = None
    tools: list[Tool] = field(factory=list)


@frozen
class MessagesRequest:
    """The body of C{POST /v1/messages}."""

    model: str
    messages: list[Message]
    max_tokens: int
    system: str | list[TextBlock] | None = None
    stream: bool = False
    stop_sequences: list[str] = field(factory=list)
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    metadata: JSONObject | None = None
    tools: list[Tool] = field(factory=list)
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
    output_config: OutputConfig | None = None


# Block types that are server-tool artefacts: accepted, then rendered or dropped.
SERVER_TOOL_BLOCK_TYPES = frozenset(
    {
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "container_upload",
        "mcp_tool_use",
        "mcp_tool_result",
    }
)

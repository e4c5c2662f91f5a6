"""Typed models of the OpenAI Chat Completions request that ccproxy sends upstream.

Unstructured by one private cattrs converter that omits every field left at its default
(C{None}), so no nulls or unknown keys reach strict servers. Each tool is encoded once
(L{ChatTool.encoded}) and its JSON spliced into every body that resends it: the tools are
the largest part of a Claude Code request that never changes. So is each message (L{ChatMessage.encoded}),
which the message walk remembers from turn to turn. Responses and stream chunks
are read as plain dicts on purpose: they are the hot path, and the converters check each
field they use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Union

import cattrs
from attrs import field, frozen
from cattrs.gen import make_dict_unstructure_fn, override

from ccproxy import jsonio

__all__ = [
    "TextPart",
    "ImagePart",
    "FilePart",
    "ContentPart",
    "FunctionCall",
    "ToolCall",
    "ChatMessage",
    "FunctionDef",
    "ChatTool",
    "ChatRequest",
    "to_json",
    "to_dict",
    "wire_payload",
]


@frozen
class TextPart:
    """A C{text} content part."""

    text: str
    type: Literal["text"] = "text"
    cache_control: dict[str, Any] | None = None


@frozen
class ImagePart:
    """An C{image_url} content part; C{image_url} is C{{"url": …}}."""

    image_url: dict[str, str]
    type: Literal["image_url"] = "image_url"


@frozen
class FilePart:
    """A C{file} content part (PDFs, for providers that read them)."""

    file: dict[str, str]
    type: Literal["file"] = "file"


ContentPart = Union[TextPart, ImagePart, FilePart]


@frozen
class FunctionCall:
    """The function of a tool call; C{arguments} is a JSON text, never empty."""

    name: str
    arguments: str


@frozen
class ToolCall:
    """One C{tool_calls} entry of an assistant message."""

    id: str
    function: FunctionCall
    type: Literal["function"] = "function"
    extra_content: dict[str, Any] | None = None


@frozen
class ChatMessage:
    """A message of any role; fields that do not apply stay C{None} and are omitted."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    reasoning_details: list[dict[str, Any]] | None = None
    # Its JSON, made on first use (by wire_payload). The message walk hands the same message to
    # every later turn of its conversation (ccproxy.convert.walks), so it is encoded once.
    _encoded: list[jsonio.Encoded] = field(factory=list, init=False, eq=False, repr=False)

    def encoded(self) -> jsonio.Encoded:
        """This message as it goes on the wire, encoded once."""
        if not self._encoded:
            self._encoded.append(jsonio.Encoded(_message_data(self)))
        return self._encoded[0]


@frozen
class FunctionDef:
    """A function tool's definition."""

    name: str
    parameters: dict[str, Any]
    description: str | None = None


@frozen
class ChatTool:
    """One entry of C{tools}."""

    function: FunctionDef
    type: Literal["function"] = "function"
    # Its JSON, made on first use (by wire_payload). A converted tool is shared by every request
    # that resends it (ccproxy.anthropic.Tool.converted), so it is encoded once, not every turn.
    _encoded: list[jsonio.Encoded] = field(factory=list, init=False, eq=False, repr=False)

    def encoded(self) -> jsonio.Encoded:
        """This tool as it goes on the wire, encoded once."""
        if not self._encoded:
            self._encoded.append(jsonio.Encoded(_tool_data(self)))
        return self._encoded[0]


@frozen
class ChatRequest:
    """The body of C{POST /chat/completions}."""

    model: str
    messages: list[ChatMessage]
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    tools: list[ChatTool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: str | None = None
    extra: dict[str, Any] = field(factory=dict)


def _make_converter() -> tuple[
    cattrs.Converter, Callable[[ChatTool], dict[str, Any]], Callable[[ChatMessage], dict[str, Any]]
]:
    """The unstructuring converter, which writes each tool and message as its remembered JSON,
    and the functions that make a tool's and a message's plain data (which that JSON encodes)."""
    converter = cattrs.Converter(omit_if_default=True)
    # Free-form JSON (tool schemas, images, provider extras) is already JSON: pass it
    # through instead of walking every value (that walk was most of the unstructure time).
    converter.register_unstructure_hook_func(
        lambda t: t in (dict[str, Any], dict[str, str], list[dict[str, Any]]), lambda value: value
    )
    # `type` is a wire discriminator: always sent, although it has a default.
    sent = override(omit_if_default=False)
    for cls in (TextPart, ImagePart, FilePart, ToolCall):
        converter.register_unstructure_hook(
            cls, make_dict_unstructure_fn(cls, converter, _cattrs_omit_if_default=True, type=sent)
        )
    tool_data = make_dict_unstructure_fn(
        ChatTool, converter, _cattrs_omit_if_default=True, type=sent, _encoded=override(omit=True)
    )
    converter.register_unstructure_hook(ChatTool, ChatTool.encoded)
    # Unions of plain types and attrs classes: dispatch on the runtime class.
    converter.register_unstructure_hook_func(
        lambda t: t in (str | list[ContentPart] | None, ContentPart, str | dict[str, Any] | None),
        lambda value: converter.unstructure(value, unstructure_as=value.__class__),
    )
    message_data = make_dict_unstructure_fn(
        ChatMessage, converter, _cattrs_omit_if_default=True, _encoded=override(omit=True)
    )
    converter.register_unstructure_hook(ChatMessage, ChatMessage.encoded)
    return converter, tool_data, message_data


_converter, _tool_data, _message_data = _make_converter()


def wire_payload(request: ChatRequest) -> dict[str, Any]:
    """The upstream body before encoding: C{extra} (provider fields) merged in last, each tool
    and message as its JSON encoded once (L{ChatTool.encoded}, L{ChatMessage.encoded}). The exchange edits its top-level fields
    and encodes it with L{jsonio.dumps}."""
    data: dict[str, Any] = _converter.unstructure(request)
    extra = data.pop("extra", None)
    if extra:
        data.update(extra)
    return data


def to_dict(request: ChatRequest) -> dict[str, Any]:
    """The request as plain data: exactly what the upstream receives, decoded."""
    data: dict[str, Any] = jsonio.loads(to_json(request))
    return data


def to_json(request: ChatRequest) -> bytes:
    """The request body, UTF-8 JSON (a lone surrogate is kept as its C{\\u} escape)."""
    return jsonio.dumps(wire_payload(request))

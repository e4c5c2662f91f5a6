"""Validation of Anthropic Messages API requests into the typed models of L{ccproxy.anthropic}.

Incoming JSON is structured by one private cattrs converter: wrong types become a
L{RequestError} naming the field (a 400 for the client), unknown fields are ignored because
Claude Code adds new ones often, and content blocks are a union keyed on C{type}.
"""

from __future__ import annotations

from typing import Any

import cattrs
from attrs import evolve, has
from cattrs.cols import is_sequence, list_structure_factory
from cattrs.gen import make_dict_structure_fn
from cattrs.v import format_exception

from ccproxy import jsonio
from ccproxy.anthropic import (
    SERVER_TOOL_BLOCK_TYPES,
    Block,
    CountTokensRequest,
    DocumentBlock,
    ImageBlock,
    JSONObject,
    Message,
    MessagesRequest,
    MidConvSystemBlock,
    RedactedThinkingBlock,
    RequestError,
    SearchResultBlock,
    ServerToolBlock,
    TextBlock,
    ThinkingBlock,
    Tool,
    ToolReferenceBlock,
    ToolResultBlock,
    ToolUseBlock,
)

__all__ = [
    "MAX_JSON_DEPTH",
    "check_depth",
    "too_deep",
    "parse_messages_request",
    "parse_count_tokens_request",
    "validated_message",
    "validated_tools",
    "validated_rest",
    "assembled_request",
]


# Far beyond any real request (Claude Code's deepest are tool schemas, a dozen levels), and
# shallow enough that every walk of a body, and the stdlib JSON encoder, stays far from
# Python's recursion limit.
MAX_JSON_DEPTH = 128


def too_deep() -> RequestError:
    """The error for a body that nests deeper than L{MAX_JSON_DEPTH}."""
    return RequestError(f"request body nests deeper than {MAX_JSON_DEPTH} levels")


def check_depth(body: Any) -> None:
    """@raise RequestError: C{body} nests arrays and objects deeper than L{MAX_JSON_DEPTH}."""
    if jsonio.deeper_than(body, MAX_JSON_DEPTH):
        raise too_deep()


_BLOCK_CLASSES: dict[str, type[Any]] = {
    "text": TextBlock,
    "image": ImageBlock,
    "document": DocumentBlock,
    "search_result": SearchResultBlock,
    "tool_reference": ToolReferenceBlock,
    "tool_use": ToolUseBlock,
    "tool_result": ToolResultBlock,
    "thinking": ThinkingBlock,
    "redacted_thinking": RedactedThinkingBlock,
    "mid_conv_system": MidConvSystemBlock,
}


def _strict(kind: type[Any], label: str) -> Any:
    """A structure hook that accepts only values already of C{kind} (no coercion)."""

    def structure(value: Any, _: Any) -> Any:
        if isinstance(value, bool) and kind is not bool:
            raise _OwnTypeError(f"expected {label}, got a boolean")
        if not isinstance(value, kind):
            raise _OwnTypeError(f"expected {label}, got {type(value).__name__}")
        return value

    return structure


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=False, detailed_validation=True)
    # cattrs would build a list from any iterable and an attrs class from anything that
    # supports `in`: "stop_sequences": "END" would become ["E", "N", "D"], and a string
    # or {} a valid empty config. JSON arrays and objects only (as decoded: list and dict,
    # which isinstance checks far faster than the Sequence and Mapping ABCs).
    converter.register_structure_hook_factory(is_sequence, lambda t: _only(list, "an array", list_structure_factory(t, converter)))
    converter.register_structure_hook_factory(has, lambda t: _only(dict, "an object", make_dict_structure_fn(t, converter)))
    converter.register_structure_hook(str, _strict(str, "a string"))
    converter.register_structure_hook(bool, _strict(bool, "a boolean"))
    converter.register_structure_hook(int, _strict(int, "an integer"))
    converter.register_structure_hook(
        float, lambda v, _: float(_strict((int, float), "a number")(v, _))  # type: ignore[arg-type]
    )
    _exactly(converter, JSONObject, _strict(dict, "an object"))
    # Hooks looked up once: converter.structure() finds the hook for a type on every call,
    # hashing generic aliases such as list[Block] (about 2 us, for every message).
    hooks: dict[Any, Any] = {}

    def hook_for(annotation: Any) -> Any:
        found = hooks.get(annotation)
        if found is None:
            found = hooks[annotation] = converter.get_structure_hook(annotation)
        return found

    def structure_block(value: Any, _: Any) -> Block:
        if not isinstance(value, dict):
            raise _OwnTypeError(f"expected a content block object, got {type(value).__name__}")
        kind = value.get("type")
        cls = _BLOCK_CLASSES.get(kind) if isinstance(kind, str) else None
        if cls is not None:
            return hook_for(cls)(value, cls)  # type: ignore[no-any-return]
        if kind in SERVER_TOOL_BLOCK_TYPES:
            return ServerToolBlock(type=kind, raw=dict(value))
        raise _OwnTypeError(f"unknown content block type {kind!r}")

    def structure_content(value: Any, _: Any) -> str | list[Block]:
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            blocks: list[Block] = hook_for(list[Block])(value, list[Block])
            return blocks
        raise _OwnTypeError(f"expected a string or a list of content blocks, got {type(value).__name__}")

    def structure_optional_content(value: Any, _: Any) -> str | list[Block] | None:
        return None if value is None else structure_content(value, _)

    def structure_system(value: Any, _: Any) -> str | list[TextBlock] | None:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, list):
            texts: list[TextBlock] = hook_for(list[TextBlock])(value, list[TextBlock])
            return texts
        raise _OwnTypeError(f"expected a string or a list of text blocks, got {type(value).__name__}")

    _exactly(converter, Block, structure_block)
    _exactly(converter, str | list[Block], structure_content)
    _exactly(converter, str | list[Block] | None, structure_optional_content)
    _exactly(converter, str | list[TextBlock] | None, structure_system)
    return converter


def _only(kind: type[Any], label: str, structure: Any) -> Any:
    """C{structure}, for values that are already a C{kind} (a JSON array or object)."""

    def hook(value: Any, annotation: Any) -> Any:
        if not isinstance(value, kind):
            raise _OwnTypeError(f"expected {label}, got {type(value).__name__}")
        return structure(value, annotation)

    return hook


def _exactly(converter: cattrs.Converter, annotation: Any, hook: Any) -> None:
    """Register C{hook} for exactly C{annotation} (generic aliases and unions included)."""
    converter.register_structure_hook_func(lambda t: bool(t == annotation), hook)


_converter = _make_converter()


def _structure(body: Any, cls: type[Any]) -> Any:
    if not isinstance(body, dict):
        raise RequestError("request body must be a JSON object")
    for name in ("model", "messages") + (("max_tokens",) if cls is MessagesRequest else ()):
        if name not in body:
            raise RequestError(f"{name}: field required")
    try:
        return _converter.structure(body, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError) as error:
        raise RequestError(_describe(error)) from None


def _describe(error: Exception) -> str:
    if isinstance(error, cattrs.BaseValidationError):
        lines = cattrs.transform_error(error, path="body", format_exception=_format_exception)
        return "; ".join(line.replace("body.", "", 1) for line in lines[:3])
    return str(error)


class _OwnTypeError(TypeError):
    """Raised by our hooks; its message is already written for the client."""


def _format_exception(error: BaseException, annotation: Any) -> str:
    if isinstance(error, _OwnTypeError):
        return str(error)
    if "not in literal" in str(error):
        allowed = ", ".join(repr(a) for a in getattr(annotation, "__args__", ()))
        return f"must be one of {allowed}"
    return format_exception(error, annotation)


def parse_messages_request(body: Any) -> MessagesRequest:
    """Validate a decoded C{/v1/messages} body.

    @raise RequestError: the body is not a valid Messages request.
    """
    request: MessagesRequest = _structure(body, MessagesRequest)
    _check(request)
    return request


def _check(request: MessagesRequest) -> None:
    """What the fields' types do not say. @raise RequestError: what is wrong."""
    if request.max_tokens < 0:
        raise RequestError("max_tokens: must be greater than or equal to 0")
    if not request.messages:
        raise RequestError("messages: at least one message is required")


def validated_rest(value: dict[str, Any]) -> MessagesRequest | None:
    """A body without its C{messages} and C{tools}, validated on its own (the request it
    makes has neither); None when it is not valid (see L{validated_message})."""
    try:
        rest: MessagesRequest = _structure({**value, "messages": [], "tools": []}, MessagesRequest)
    except RequestError:
        return None
    return rest


def assembled_request(rest: MessagesRequest, messages: list[Message], tools: list[Tool]) -> MessagesRequest | None:
    """The request made of parts validated on their own (L{validated_rest},
    L{validated_message}, L{validated_tools}; remembered across requests by
    L{ccproxy.parts}); None when the whole is not valid (L{parse_messages_request} says why)."""
    request = evolve(rest, messages=messages, tools=tools)
    try:
        _check(request)
    except RequestError:
        return None
    return request


def validated_message(value: Any) -> Message | None:
    """One entry of C{messages}, validated on its own; None when it is not valid (the whole
    body's validation then reports why, with the entry's place in the body)."""
    try:
        message: Message = _converter.structure(value, Message)
    except (cattrs.BaseValidationError, TypeError, ValueError):
        return None
    return message


def validated_tools(value: Any) -> list[Tool] | None:
    """A C{tools} list, validated on its own; None when it is not valid (see L{validated_message})."""
    try:
        tools: list[Tool] = _converter.structure(value, list[Tool])
    except (cattrs.BaseValidationError, TypeError, ValueError):
        return None
    return tools


def parse_count_tokens_request(body: Any) -> CountTokensRequest:
    """Validate a decoded C{/v1/messages/count_tokens} body.

    @raise RequestError: the body is not a valid count_tokens request.
    """
    request: CountTokensRequest = _structure(body, CountTokensRequest)
    if not request.messages:
        raise RequestError("messages: at least one message is required")
    return request

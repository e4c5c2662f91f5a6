"""What ccproxy derives from each part of a request, remembered across requests.

Claude Code resends the whole conversation, every tool definition, the system prompt and the same settings with
each turn, so all but the newest messages, the tools and the rest of the body are byte for byte what the previous
request carried. Validating them (cattrs) and gathering their texts for the token estimate were about half of
ccproxy's own work on a 48 KB request, and grow with the conversation. L{RequestParts} does both once per distinct
message, tools list or rest (the body without its messages and tools) and remembers the result, keyed by the
part's JSON as orjson writes it (exact: two parts share a result only if they are the same JSON; the key costs
about a fifth of the work it saves). What is remembered is immutable (frozen attrs objects and tuples) and never
handed out for editing: the conversion builds new objects from it, or shares what it never edits (a tool's
upstream form, L{ccproxy.anthropic.Tool.converted}).

The same key checks the body's depth (L{ccproxy.validation.MAX_JSON_DEPTH}) without a pass of its own: a part is
checked when it is first seen, and a remembered part is the same JSON, so it nests exactly as deep as it did then.

The memo is bounded by the total size of its keys, least recently used first out. What it holds costs about eight
times the key size in memory (the validated objects, the decoded strings they keep, the joined texts and the key:
the 48 KB benchmark body has 48 KB of keys and holds about 400 KB), so the bounds below cost at most about 36 MB.

A body that resends the bytes of one split before need not even be decoded whole: L{RequestParts.split_resent}
finds its old messages by their place in the bytes (L{ccproxy.layouts}) and validates only its new ones. The
layouts keep the parts of their bodies' messages too, so those can outlive this memo's bound (by at most about
eight times the layouts' own 4 MB).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from attrs import frozen

from ccproxy import jsonio
from ccproxy.anthropic import Message, MessagesRequest, RequestError, Tool
from ccproxy.layouts import Layouts
from ccproxy.token_parts import BodyTexts, PartText, ToolText, message_text, tool_text
from ccproxy.validation import (
    MAX_JSON_DEPTH,
    assembled_request,
    too_deep,
    validated_message,
    validated_rest,
    validated_tools,
)

__all__ = ["Parts", "RequestParts"]

# Enough for a few long Claude Code conversations at once (late in a session a request carries 0.5-1 MB),
# for a dozen distinct tool sets, and for dozens of distinct rests (system prompt and settings, 5-20 KB each).
MESSAGE_BYTES = 3 * 1024 * 1024
TOOLS_BYTES = 1024 * 1024
REST_BYTES = 512 * 1024
_SPLIT = frozenset({"messages", "tools"})
# How deep each part may nest for the body to stay within MAX_JSON_DEPTH: a message is inside
# the body and its messages array, the tools array inside the body; the rest is the body's
# own object, less two keys.
_MESSAGE_DEPTH = MAX_JSON_DEPTH - 2
_TOOLS_DEPTH = MAX_JSON_DEPTH - 1

_V = TypeVar("_V")


class _Remembered(Generic[_V]):
    """A least-recently-used map from JSON bytes to what was derived from them, bounded by the keys' total size."""

    def __init__(self, max_bytes: int) -> None:
        self._entries: OrderedDict[bytes, _V] = OrderedDict()
        self._size = 0
        self._max_bytes = max_bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> _V | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def derived(self, value: Any, derive: Callable[[Any], _V | None], depth: int) -> _V | None:
        """What C{derive} makes of C{value}, remembered by its JSON; None (and nothing remembered)
        when it makes nothing.

        @param depth: how deep C{value} may nest.
        @raise RequestError: it nests deeper (checked only when it is not remembered).
        """
        return self.keyed(value, derive, depth)[0]

    def keyed(self, value: Any, derive: Callable[[Any], _V | None], depth: int) -> tuple[_V | None, bytes]:
        """L{derived}, and the JSON of C{value} it is remembered by."""
        key = jsonio.dumps_within(value, depth)
        if key is None:
            raise too_deep()
        found = self.get(key)
        if found is None:
            if jsonio.deeper_than(value, depth, key):
                raise too_deep()
            found = derive(value)
            if found is not None and len(key) <= self._max_bytes:
                self._entries[key] = found
                self._size += len(key)
                while self._size > self._max_bytes:
                    oldest, _ = self._entries.popitem(last=False)
                    self._size -= len(oldest)
        return found, key


@frozen
class _MessagePart:
    message: Message
    text: PartText


@frozen
class _ToolsPart:
    tools: tuple[Tool, ...]
    texts: tuple[ToolText | None, ...]


_NO_TOOLS = _ToolsPart((), ())


@frozen
class Parts:
    """A body, validated, with the counting parts of its messages and tools.

    @ivar request: a new request object; its messages, tools and the rest's fields are
        shared (immutable).
    @ivar counted: the body as the token count reads it besides C{texts} (its system prompt):
        the body, or the body it resends without its messages and tools.
    """

    request: MessagesRequest
    texts: BodyTexts
    counted: dict[str, Any]


@frozen
class _Rest:
    """What a remembered layout's other parts mean (L{ccproxy.layouts})."""

    tools: _ToolsPart
    rest: MessagesRequest
    counted: dict[str, Any]


class RequestParts:
    """The memo of one running proxy (held by its L{ccproxy.web.context.Context}, never global)."""

    def __init__(
        self, message_bytes: int = MESSAGE_BYTES, tools_bytes: int = TOOLS_BYTES, rest_bytes: int = REST_BYTES
    ) -> None:
        self._messages: _Remembered[_MessagePart] = _Remembered(message_bytes)
        self._tools: _Remembered[_ToolsPart] = _Remembered(tools_bytes)
        self._rests: _Remembered[MessagesRequest] = _Remembered(rest_bytes)
        self._layouts: Layouts[_MessagePart] = Layouts()

    def split(self, body: Any, raw: bytes | None = None) -> Parts | None:
        """C{body} validated part by part: its messages one by one, its tools, and the rest
        (system prompt and settings). None when something is not valid (or not where a
        Messages body has it): the whole body's validation then reports the error, with its path
        (after L{ccproxy.validation.check_depth}: not every part was checked here).

        @param raw: the bytes C{body} was decoded from, whose layout is then remembered for
            L{split_resent} (L{ccproxy.layouts}).
        @raise RequestError: C{body} nests deeper than L{MAX_JSON_DEPTH}.
        """
        if not isinstance(body, dict):
            return None
        messages = body.get("messages")
        tools = body.get("tools", [])
        if not isinstance(messages, list) or not isinstance(tools, list):
            return None
        message_parts, keys = [], []
        for value in messages:
            part, key = self._messages.keyed(value, _message_part, _MESSAGE_DEPTH)
            if part is None:
                return None
            message_parts.append(part)
            keys.append(key)
        tools_part = self._tools.derived(tools, _tools_part, _TOOLS_DEPTH) if tools else _NO_TOOLS
        counted = {k: v for k, v in body.items() if k not in _SPLIT}
        rest = self._rests.derived(counted, validated_rest, MAX_JSON_DEPTH)
        if tools_part is None or rest is None:
            return None
        request = assembled_request(rest, [part.message for part in message_parts], list(tools_part.tools))
        if request is None:
            return None
        if raw is not None:
            self._layouts.remember(raw, body, keys, message_parts, _Rest(tools_part, rest, counted))
        return Parts(request, BodyTexts(tuple(part.text for part in message_parts), tools_part.texts), body)

    def split_resent(self, raw: bytes) -> Parts | None:
        """The body C{raw}, validated, if it resends the bytes of a body split before (with new
        messages after some of its own: L{ccproxy.layouts}), decoding only its new messages; None
        otherwise, or when a new message is not valid (decode the body and L{split} it: that
        reports why)."""
        match = self._layouts.match(raw)
        if match is None:
            return None
        new_parts, keys = [], []
        for value in match.values:
            try:
                part, key = self._messages.keyed(value, _message_part, _MESSAGE_DEPTH)
            except RequestError:  # too deep
                return None
            if part is None:
                return None
            new_parts.append(part)
            keys.append(key)
        remembered: _Rest = match.rest
        message_parts = [*match.parts, *new_parts]
        tools = list(remembered.tools.tools)
        request = assembled_request(remembered.rest, [part.message for part in message_parts], tools)
        if request is None:
            return None
        self._layouts.extend(match, raw, keys, new_parts)
        texts = BodyTexts(tuple(part.text for part in message_parts), remembered.tools.texts)
        return Parts(request, texts, remembered.counted)


def _message_part(value: Any) -> _MessagePart | None:
    message = validated_message(value)
    return None if message is None else _MessagePart(message, message_text(value))


def _tools_part(value: Any) -> _ToolsPart | None:
    tools = validated_tools(value)
    return None if tools is None else _ToolsPart(tuple(tools), tuple(tool_text(tool) for tool in value))

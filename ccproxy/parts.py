"""What ccproxy derives from each message and from the tools of a request, remembered across requests.

Claude Code resends the whole conversation and every tool definition with each turn, so all but the newest
messages, and the tools, are byte for byte what the previous request carried. Validating them (cattrs) and
gathering their texts for the token estimate were about half of ccproxy's own work on a 48 KB request, and grow
with the conversation. L{RequestParts} does both once per distinct message or tools list and remembers the result,
keyed by the part's JSON as orjson writes it (exact: two parts share a result only if they are the same JSON; the
key costs about a fifth of the work it saves). What is remembered is immutable (frozen attrs objects and tuples)
and never handed out for editing: the conversion builds new objects from it, or shares what it never edits (a
tool's upstream form, L{ccproxy.anthropic.Tool.converted}).

The memo is bounded by the total size of its keys, least recently used first out. What it holds costs about eight
times the key size in memory (the validated objects, the decoded strings they keep, the joined texts and the key:
the 48 KB benchmark body has 41 KB of keys and holds 339 KB), so the bounds below cost at most about 32 MB.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from attrs import frozen

from ccproxy import jsonio
from ccproxy.anthropic import Message, Tool
from ccproxy.tokens import BodyTexts, PartText, ToolText, message_text, tool_text
from ccproxy.validation import validated_message, validated_tools

__all__ = ["Parts", "RequestParts"]

# Enough for a few long Claude Code conversations at once (late in a session a request carries 0.5-1 MB),
# and for a dozen distinct tool sets.
MESSAGE_BYTES = 3 * 1024 * 1024
TOOLS_BYTES = 1024 * 1024

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

    def derived(self, value: Any, derive: Callable[[Any], _V | None]) -> _V | None:
        """What C{derive} makes of C{value}, remembered by its JSON; None (and nothing remembered)
        when it makes nothing."""
        key = jsonio.dumps(value)
        found = self.get(key)
        if found is None:
            found = derive(value)
            if found is not None and len(key) <= self._max_bytes:
                self._entries[key] = found
                self._size += len(key)
                while self._size > self._max_bytes:
                    oldest, _ = self._entries.popitem(last=False)
                    self._size -= len(oldest)
        return found


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
    """A body's messages and tools, validated, with their counting parts.

    @ivar messages: a new list for this request (the entries are shared, immutable).
    @ivar tools: likewise.
    """

    messages: list[Message]
    tools: list[Tool]
    texts: BodyTexts


class RequestParts:
    """The memo of one running proxy (held by its L{ccproxy.web.context.Context}, never global)."""

    def __init__(self, message_bytes: int = MESSAGE_BYTES, tools_bytes: int = TOOLS_BYTES) -> None:
        self._messages: _Remembered[_MessagePart] = _Remembered(message_bytes)
        self._tools: _Remembered[_ToolsPart] = _Remembered(tools_bytes)

    def split(self, body: Any) -> Parts | None:
        """The validated messages and tools of C{body}, or None when one of them is not valid (or not where a
        Messages body has them): the whole body's validation then reports the error, with its path."""
        if not isinstance(body, dict):
            return None
        messages = body.get("messages")
        tools = body.get("tools", [])
        if not isinstance(messages, list) or not isinstance(tools, list):
            return None
        message_parts = []
        for value in messages:
            part = self._messages.derived(value, _message_part)
            if part is None:
                return None
            message_parts.append(part)
        tools_part = self._tools.derived(tools, _tools_part) if tools else _NO_TOOLS
        if tools_part is None:
            return None
        return Parts(
            [part.message for part in message_parts],
            list(tools_part.tools),
            BodyTexts(tuple(part.text for part in message_parts), tools_part.texts),
        )


def _message_part(value: Any) -> _MessagePart | None:
    message = validated_message(value)
    return None if message is None else _MessagePart(message, message_text(value))


def _tools_part(value: Any) -> _ToolsPart | None:
    tools = validated_tools(value)
    return None if tools is None else _ToolsPart(tuple(tools), tuple(tool_text(tool) for tool in value))

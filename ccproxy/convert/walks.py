"""Where the message walk stood near the end of recent conversations, so the next turn resumes there.

The walk (L{ccproxy.convert.messages}) is a pure function of its messages, the provider profile and
the upstream model, and it only ever appends to what it emitted (a mid-conversation system text may
replace the last message emitted, never an earlier one): what it made of the first messages of a
request is what it makes of the same first messages of the next one, so it resumes where the
previous turn's walk stopped (L{ccproxy.prefixes}). Without this the walk was the largest part of
ccproxy's own work late in a session (about 2 ms of 4.4 for 280 messages), growing with every turn.

A state holds the messages the walk emitted, immutable and shared by every request that resumes
from it, each with its JSON once it was sent (L{ChatMessage.encoded}). The memo is bounded by the
characters the emitted messages carry, counted twice (as text and as JSON).
"""

from __future__ import annotations

from attrs import frozen

from ccproxy.openai import ChatMessage, ImagePart, TextPart
from ccproxy.prefixes import KEEP, LOOKBACK, PrefixMemo, Resumed

__all__ = ["WalkState", "WalkMemo", "Resumed", "MAX_WEIGHT", "MAX_LINES", "LOOKBACK", "KEEP"]

# The characters the remembered messages may carry in all, each counted twice (a long Claude Code
# session's conversation is 0.5-1 M characters: a few such conversations, about 8 MB of text and
# JSON at most), and how many conversations are remembered at once (a session, its subagents and
# its side requests on the small model).
MAX_WEIGHT = 8_000_000
MAX_LINES = 32
_OBJECT_WEIGHT = 64  # what an emitted message, part or call costs besides its text


@frozen
class WalkState:
    """What a walk had emitted and was waiting for after some messages (before it closes).

    @ivar out: the messages emitted so far.
    @ivar awaiting: upstream ids of the last assistant's calls still waiting for a result.
    @ivar pending_system: system texts not yet placed.
    @ivar upstream_ids: (upstream id, client id) pairs the walk's L{ToolIdMap} learned.
    @ivar names: the tool names the messages mention, in order of first mention.
    @ivar loaded: the deferred tools they loaded or called.
    """

    out: tuple[ChatMessage, ...]
    awaiting: tuple[str, ...]
    pending_system: tuple[str, ...]
    upstream_ids: tuple[tuple[str, str], ...]
    names: tuple[str, ...]
    loaded: frozenset[str]


class WalkMemo(PrefixMemo[WalkState]):
    """The walk states of one running proxy: found by the upstream model (the tag) and the
    provider profile (the owner) besides the messages, weighed by what they emitted."""

    def __init__(self, max_weight: int = MAX_WEIGHT, max_lines: int = MAX_LINES) -> None:
        super().__init__(_weight_after, max_weight, max_lines)


def _weight_after(state: WalkState, before: tuple[WalkState, int] | None) -> int:
    """The weight of what C{state} emitted: that of an earlier state of the same walk, plus what was
    emitted after it (all of it if the walk replaced the last message of that state)."""
    out = state.out
    if before is None or not before[0].out:
        return sum(map(_message_weight, out))
    earlier, weight = before
    done = len(earlier.out)
    if len(out) < done or out[done - 1] is not earlier.out[-1]:
        return sum(map(_message_weight, out))
    return weight + sum(map(_message_weight, out[done:]))


def _message_weight(message: ChatMessage) -> int:
    """About what C{message} holds: the characters of its texts, arguments, image and file data,
    twice (once more in its JSON), and its objects."""
    objects = 1
    characters = len(message.reasoning_content or "") + len(message.reasoning or "")
    content = message.content
    if isinstance(content, str):
        characters += len(content)
    else:
        for part in content or ():
            objects += 1
            if isinstance(part, TextPart):
                characters += len(part.text)
            else:
                data = part.image_url if isinstance(part, ImagePart) else part.file
                characters += sum(len(value) for value in data.values())
    for call in message.tool_calls or ():
        objects += 1
        characters += len(call.function.arguments)
    for detail in message.reasoning_details or ():
        objects += 1
        characters += sum(len(value) for value in detail.values() if isinstance(value, str))
    return objects * _OBJECT_WEIGHT + 2 * characters

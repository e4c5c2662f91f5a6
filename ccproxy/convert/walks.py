"""Where the message walk stood at the end of recent conversations, so the next turn resumes there.

Claude Code resends the whole conversation with each turn: a request is the previous one plus the
newest assistant turn and the user's answer. L{ccproxy.parts} hands out the very same L{Message}
object for a message it has seen before, so the first messages of such a request are the objects the
previous request was walked over. The walk (L{ccproxy.convert.messages}) is a pure function of its
messages, the provider profile and the upstream model, and it only ever appends to what it emitted
(a mid-conversation system text may replace the last message emitted, never an earlier one): what it
made of a request's messages is what it makes of the same first messages of the next request. So the
next request's walk starts from that state and converts only the new messages. Without this the walk
was the largest part of ccproxy's own work late in a session (about 2.4 ms of 5.7 for 280 messages),
growing with every turn.

A remembered state holds weak references to its messages (it is found by their identity; keeping
them alive is the parts memo's business, bounded there) and the messages it emitted, which are
immutable and shared by every request that resumes from it, each with its JSON once it was sent
(L{ChatMessage.encoded}). The memo is bounded by the characters those emitted messages carry,
counted twice (as text and as JSON), oldest first out, and keeps one state per conversation: the
state a request resumed from is replaced by the longer one it leaves.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Sequence

from attrs import frozen

from ccproxy.anthropic import Message
from ccproxy.openai import ChatMessage, ImagePart, TextPart
from ccproxy.providers import Profile

__all__ = ["WalkState", "WalkMemo", "Resumed", "MAX_WEIGHT", "MAX_STATES", "LOOKBACK"]

# The characters the remembered messages may carry in all, each counted twice (a long Claude Code
# session's conversation is 0.5-1 M characters: a few such conversations, about 8 MB of text and
# JSON at most), and how many conversations are remembered at once (a session, its subagents and
# its side requests on the small model).
MAX_WEIGHT = 8_000_000
MAX_STATES = 64
# How many new messages a request may bring and still resume: a turn brings two (the
# assistant's answer and the user's), an interrupted or compacted one a few more.
LOOKBACK = 32
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


@frozen
class Resumed:
    """A remembered state that fits a request: its first C{length} messages are walked."""

    length: int
    state: WalkState
    key: tuple[int, int, str]
    weight: int


@frozen
class _Entry:
    messages: tuple[weakref.ref[Message], ...]
    profile: Profile
    state: WalkState
    weight: int


class WalkMemo:
    """The walk states of one running proxy (held by its L{ccproxy.web.context.Context})."""

    def __init__(self, max_weight: int = MAX_WEIGHT, max_states: int = MAX_STATES) -> None:
        self._entries: OrderedDict[tuple[int, int, str], _Entry] = OrderedDict()
        self._weight = 0
        self._max_weight = max_weight
        self._max_states = max_states

    def __len__(self) -> int:
        return len(self._entries)

    def resume(self, messages: Sequence[Message], profile: Profile, model: str) -> Resumed | None:
        """The state after the longest remembered start of C{messages} walked for C{profile} and
        C{model}, if one of the last L{LOOKBACK} positions ends one."""
        for length in range(len(messages), max(0, len(messages) - LOOKBACK), -1):
            key = (length, id(messages[length - 1]), model)
            entry = self._entries.get(key)
            if entry is None:
                continue
            if entry.profile is profile and all(ref() is message for ref, message in zip(entry.messages, messages)):
                self._entries.move_to_end(key)
                return Resumed(length, entry.state, key, entry.weight)
            # Another conversation's, or its messages are gone and the id is reused: useless now.
            self._forget(key)
        return None

    def remember(
        self, messages: Sequence[Message], profile: Profile, model: str, state: WalkState, resumed: Resumed | None
    ) -> None:
        """Remember C{state}, the walk's after all of C{messages}, in place of the one it resumed from."""
        if not messages:
            return
        weight = _weight_after(state.out, resumed)
        if resumed is not None:
            self._forget(resumed.key)
        if weight > self._max_weight:
            return
        key = (len(messages), id(messages[-1]), model)
        self._forget(key)
        self._entries[key] = _Entry(tuple(weakref.ref(message) for message in messages), profile, state, weight)
        self._weight += weight
        while self._weight > self._max_weight or len(self._entries) > self._max_states:
            self._forget(next(iter(self._entries)))

    def _forget(self, key: tuple[int, int, str]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._weight -= entry.weight


def _weight_after(out: tuple[ChatMessage, ...], resumed: Resumed | None) -> int:
    """The weight of C{out}: the resumed state's, plus what was emitted after it (all of it if the
    walk replaced the last message it resumed with)."""
    if resumed is None or not resumed.state.out:
        return sum(map(_message_weight, out))
    done = len(resumed.state.out)
    if len(out) < done or out[done - 1] is not resumed.state.out[-1]:
        return sum(map(_message_weight, out))
    return resumed.weight + sum(map(_message_weight, out[done:]))


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

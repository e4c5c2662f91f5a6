"""Where the message walk stood near the end of recent conversations, so the next turn resumes there.

Claude Code resends the whole conversation with each turn: a request is the previous one plus the
newest assistant turn and the user's answer, except that the previous last message loses its prompt
cache mark (C{cache_control} moves to the new last message). L{ccproxy.parts} hands out the very
same L{Message} object for a message it has seen before, so all the first messages of such a request
but that one are the objects the previous request was walked over. The walk
(L{ccproxy.convert.messages}) is a pure function of its messages, the provider profile and the
upstream model, and it only ever appends to what it emitted (a mid-conversation system text may
replace the last message emitted, never an earlier one): what it made of the first messages of a
request is what it makes of the same first messages of the next one. So each walk leaves its
state after each of its last L{KEEP} messages, and the next request's walk starts from the
longest of them its messages begin with, converting only the rest. Without this the walk was
the largest part of ccproxy's own work late in a session (about 2 ms of 4.4 for 280 messages),
growing with every turn.

What one request's walk left (a line) holds weak references to its messages (a state is found by
their identity; keeping them alive is the parts memo's business, bounded there) and its states:
the messages they emitted, immutable and shared by every request that resumes from them, each
with its JSON once it was sent (L{ChatMessage.encoded}). The memo keeps one line per
conversation (a request's line replaces the one it resumed from) and is bounded by the
characters the emitted messages carry, counted twice (as text and as JSON), oldest line first out.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Sequence

from attrs import frozen

from ccproxy.anthropic import Message
from ccproxy.openai import ChatMessage, ImagePart, TextPart
from ccproxy.providers import Profile

__all__ = ["WalkState", "WalkMemo", "Resumed", "MAX_WEIGHT", "MAX_LINES", "LOOKBACK", "KEEP"]

# The characters the remembered messages may carry in all, each counted twice (a long Claude Code
# session's conversation is 0.5-1 M characters: a few such conversations, about 8 MB of text and
# JSON at most), and how many conversations are remembered at once (a session, its subagents and
# its side requests on the small model).
MAX_WEIGHT = 8_000_000
MAX_LINES = 32
# How many new messages a request may bring and still resume: a turn brings two (the
# assistant's answer and the user's), an interrupted or compacted one a few more.
LOOKBACK = 32
# After how many of its last messages a walk's state is remembered. Claude Code marks the last
# message of each request for prompt caching (cache_control) and the next request sends that
# message unmarked: a different message, so the next turn resumes before it, not after it.
KEEP = 4
_OBJECT_WEIGHT = 64  # what an emitted message, part or call costs besides its text

_Key = tuple[int, int, str]  # messages walked, id of the last of them, upstream model


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


@frozen(eq=False)
class _Line:
    """What one request's walk left: its messages, and its states after each of the last L{KEEP}
    of them (by the number of messages walked), with their weights."""

    messages: tuple[weakref.ref[Message], ...]
    profile: Profile
    model: str
    states: dict[int, tuple[WalkState, int]]
    keys: tuple[_Key, ...]
    weight: int


@frozen
class Resumed:
    """A remembered state that fits a request: its first C{length} messages are walked."""

    length: int
    state: WalkState
    line: _Line


class WalkMemo:
    """The walk states of one running proxy (held by its L{ccproxy.web.context.Context})."""

    def __init__(self, max_weight: int = MAX_WEIGHT, max_lines: int = MAX_LINES) -> None:
        self._lines: OrderedDict[_Line, None] = OrderedDict()  # least recently used first
        self._index: dict[_Key, _Line] = {}
        self._weight = 0
        self._max_weight = max_weight
        self._max_lines = max_lines

    def __len__(self) -> int:
        """How many conversations are remembered."""
        return len(self._lines)

    def resume(self, messages: Sequence[Message], profile: Profile, model: str) -> Resumed | None:
        """The state after the longest remembered start of C{messages} walked for C{profile} and
        C{model}, if one of the last L{LOOKBACK} positions ends one."""
        for length in range(len(messages), max(0, len(messages) - LOOKBACK), -1):
            line = self._index.get((length, id(messages[length - 1]), model))
            if line is None:
                continue
            if line.profile is profile and all(ref() is message for ref, message in zip(line.messages[:length], messages)):
                self._lines.move_to_end(line)
                return Resumed(length, line.states[length][0], line)
            # Another conversation's, or its messages are gone and the id is reused: useless now.
            self._forget(line)
        return None

    def remember(
        self,
        messages: Sequence[Message],
        profile: Profile,
        model: str,
        states: dict[int, WalkState],
        resumed: Resumed | None,
    ) -> None:
        """Remember the C{states} a walk of C{messages} reached (by the number of messages walked;
        those among the last L{KEEP}), with those of the line it resumed from that are still among
        them, in place of that line."""
        lowest = len(messages) - KEEP
        weighed: dict[int, tuple[WalkState, int]] = {}
        base = None
        if resumed is not None:
            self._forget(resumed.line)
            weighed = {n: found for n, found in resumed.line.states.items() if lowest < n <= resumed.length}
            base = resumed.line.states[resumed.length]
        for length in sorted(states):
            state = states[length]
            weight = _weight_after(state.out, base)
            weighed[length] = base = (state, weight)
        if not weighed or base is None or base[1] > self._max_weight:
            return
        keys = tuple((length, id(messages[length - 1]), model) for length in weighed)
        known = resumed.line.messages[: resumed.length] if resumed is not None else ()  # the same messages
        refs = known + tuple(weakref.ref(message) for message in messages[len(known) :])
        line = _Line(refs, profile, model, weighed, keys, base[1])
        for key in keys:
            if key in self._index:
                self._forget(self._index[key])
            self._index[key] = line
        self._lines[line] = None
        self._weight += line.weight
        while self._weight > self._max_weight or len(self._lines) > self._max_lines:
            self._forget(next(iter(self._lines)))

    def _forget(self, line: _Line) -> None:
        if self._lines.pop(line, False) is False:
            return
        self._weight -= line.weight
        for key in line.keys:
            if self._index.get(key) is line:
                del self._index[key]


def _weight_after(out: tuple[ChatMessage, ...], before: tuple[WalkState, int] | None) -> int:
    """The weight of C{out}: that of an earlier state of the same walk, plus what was emitted after it
    (all of it if the walk replaced the last message of that state)."""
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

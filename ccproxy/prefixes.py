"""Where a fold over a conversation stood near the end of recent requests, so the next turn resumes there.

Claude Code resends the whole conversation with each turn: a request is the previous one plus the
newest assistant turn and the user's answer, except that the previous last message loses its prompt
cache mark (C{cache_control} moves to the new last message). L{ccproxy.parts} hands out the very
same objects for a message it has seen before, so all the first messages of such a request but
that one are the objects the previous request carried. A pure fold over the messages (the message
walk, L{ccproxy.convert.walks}; the token count, L{ccproxy.tokens}) reaches the same state over the
same first messages of the next request. So each fold leaves its state after each of its last
L{KEEP} messages, and the next request's fold starts from the longest of them its messages begin
with, folding only the rest: a few messages a turn, whatever the conversation's length.

What one request's fold left (a line) holds weak references to its messages (a state is found by
their identity; keeping them alive is the parts memo's business, bounded there) and its states,
immutable and shared by every request that resumes from them. The memo keeps one line per
conversation (a request's line replaces the one it resumed from) and is bounded by the number of
lines and by a weight the fold gives its states, oldest line first out.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

from attrs import frozen

__all__ = ["PrefixMemo", "Resumed", "KEEP", "LOOKBACK"]

# How many new messages a request may bring and still resume: a turn brings two (the
# assistant's answer and the user's), an interrupted or compacted one a few more.
LOOKBACK = 32
# After how many of its last messages a fold's state is remembered. Claude Code marks the last
# message of each request for prompt caching (cache_control) and the next request sends that
# message unmarked: a different message, so the next turn resumes before it, not after it.
KEEP = 4

S = TypeVar("S")
_Key = tuple[int, int, Hashable]  # messages folded, id of the last of them, the fold's tag

# How much a state weighs, given the state of the same fold it was reached from and that one's weight.
Weigh = Callable[[S, "tuple[S, int] | None"], int]


@frozen(eq=False)
class _Line(Generic[S]):
    """What one request's fold left: its messages, and its states after each of the last L{KEEP}
    of them (by the number of messages folded), with their weights."""

    items: tuple[weakref.ref[Any], ...]
    owner: object
    states: dict[int, tuple[S, int]]
    keys: tuple[_Key, ...]
    weight: int


@frozen
class Resumed(Generic[S]):
    """A remembered state that fits a request: its first C{length} messages are folded."""

    length: int
    state: S
    line: _Line[S]


class PrefixMemo(Generic[S]):
    """The states of one fold in one running proxy (held by its L{ccproxy.web.context.Context}).

    A state is found by its tag (what else the fold depended on, such as the upstream model) and by
    the identity of its owner (such as the provider profile), besides its messages.
    """

    def __init__(self, weigh: Weigh[S], max_weight: int, max_lines: int) -> None:
        self._weigh = weigh
        self._lines: OrderedDict[_Line[S], None] = OrderedDict()  # least recently used first
        self._index: dict[_Key, _Line[S]] = {}
        self._weight = 0
        self._max_weight = max_weight
        self._max_lines = max_lines

    def __len__(self) -> int:
        """How many conversations are remembered."""
        return len(self._lines)

    def resume(self, items: Sequence[object], tag: Hashable = None, owner: object = None) -> Resumed[S] | None:
        """The state after the longest remembered start of C{items} folded with C{tag} and C{owner},
        if one of the last L{LOOKBACK} positions ends one."""
        for length in range(len(items), max(0, len(items) - LOOKBACK), -1):
            line = self._index.get((length, id(items[length - 1]), tag))
            if line is None:
                continue
            if line.owner is owner and all(ref() is item for ref, item in zip(line.items[:length], items)):
                self._lines.move_to_end(line)
                return Resumed(length, line.states[length][0], line)
            # Another conversation's, or its messages are gone and the id is reused: useless now.
            self._forget(line)
        return None

    def remember(
        self,
        items: Sequence[object],
        states: dict[int, S],
        resumed: Resumed[S] | None,
        tag: Hashable = None,
        owner: object = None,
    ) -> None:
        """Remember the C{states} a fold of C{items} reached (by the number of items folded; those
        among the last L{KEEP}), with those of the line it resumed from that are still among them,
        in place of that line."""
        if resumed is not None and resumed.length == len(items):
            return  # a retry: its line holds all there is
        lowest = len(items) - KEEP
        weighed: dict[int, tuple[S, int]] = {}
        base = None
        if resumed is not None:
            self._forget(resumed.line)
            weighed = {n: found for n, found in resumed.line.states.items() if lowest < n <= resumed.length}
            base = resumed.line.states[resumed.length]
        for length in sorted(states):
            state = states[length]
            weighed[length] = base = (state, self._weigh(state, base))
        if not weighed or base is None or base[1] > self._max_weight:
            return
        keys = tuple((length, id(items[length - 1]), tag) for length in weighed)
        known = resumed.line.items[: resumed.length] if resumed is not None else ()  # the same items
        refs = known + tuple(weakref.ref(item) for item in items[len(known) :])
        line = _Line(refs, owner, weighed, keys, base[1])
        for key in keys:
            if key in self._index:
                self._forget(self._index[key])
            self._index[key] = line
        self._lines[line] = None
        self._weight += line.weight
        while self._weight > self._max_weight or len(self._lines) > self._max_lines:
            self._forget(next(iter(self._lines)))

    def _forget(self, line: _Line[S]) -> None:
        if self._lines.pop(line, False) is False:
            return
        self._weight -= line.weight
        for key in line.keys:
            if self._index.get(key) is line:
                del self._index[key]

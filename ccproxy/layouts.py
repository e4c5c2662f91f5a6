"""Where a body's messages lie in its bytes, so the next turn's body is split without decoding what it resends.

Claude Code writes each request with C{JSON.stringify}: no spaces, keys in a fixed order. The next
turn's body is this body's bytes up to the end of one of its last messages (the last one comes back
without its prompt cache mark), then the new messages, then this body's bytes again from the end of its
C{messages} array (system prompt, tools, settings). L{ccproxy.parts} remembers what each message, the
tools and the rest mean; decoding the whole body, then encoding each part again to find it there, was
most of what ccproxy still did for a resent conversation (about 1.4 ms of 1.8 for 280 messages).

A layout is remembered only for a body whose bytes are exactly orjson's encoding of what they decode to
(no spaces, no repeated key): then the lengths of its parts' encodings say where each message starts and
ends. A later body that starts with the same bytes up to the end of one of its last L{KEEP} messages,
ends with the same bytes from the end of its C{messages} array, and holds in between nothing but
JSON values separated by commas, is that body with those values as its next messages: every byte
around them is read in the same state as before, so it means what it meant. Anything else (another
client's spacing, a changed system prompt, an edited older message) is decoded whole, as before.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import orjson
from attrs import frozen

from ccproxy import jsonio

__all__ = ["Layouts", "Match", "KEEP", "MAX_BYTES", "MAX_LAYOUTS"]

# The positions, from the end of the messages, where a later body may stop sharing this one's bytes.
KEEP = 4
# The bytes kept in all (about one copy of each remembered body) and how many bodies.
MAX_BYTES = 4 * 1024 * 1024
MAX_LAYOUTS = 16
_MESSAGES = b'"messages":'

_P = TypeVar("_P")


@frozen(eq=False)
class _Layout(Generic[_P]):
    """A canonical body's bytes, cut around its last messages.

    @ivar head: the bytes up to the end of message C{first} (up to the C{[} of the messages when
        C{first} is 0).
    @ivar segments: each later message's bytes, with the comma before it (none before the first).
    @ivar suffix: the bytes from the C{]} that closes the messages.
    @ivar parts: what each message means (L{ccproxy.parts}), in order.
    @ivar rest: what the body's other parts mean, opaque here.
    """

    head: bytes
    first: int
    segments: tuple[bytes, ...]
    suffix: bytes
    parts: tuple[_P, ...]
    rest: Any

    @property
    def size(self) -> int:
        return len(self.head) + sum(map(len, self.segments)) + len(self.suffix)

    def end_of(self, count: int) -> int:
        """Where message C{count} ends (C{first} <= C{count} <= the last)."""
        return len(self.head) + sum(map(len, self.segments[: count - self.first]))


@frozen
class Match(Generic[_P]):
    """A body that resends a remembered one's bytes: its first C{known} messages are that body's
    (their C{parts}), C{values} are its next ones, decoded from C{middle}, its bytes in between."""

    layout: _Layout[_P]
    known: int
    values: list[Any]
    middle: bytes

    @property
    def parts(self) -> tuple[_P, ...]:
        return self.layout.parts[: self.known]

    @property
    def rest(self) -> Any:
        return self.layout.rest


class Layouts(Generic[_P]):
    """The layouts of the latest bodies of one running proxy, least recently used first out."""

    def __init__(self, max_bytes: int = MAX_BYTES, max_layouts: int = MAX_LAYOUTS) -> None:
        self._layouts: OrderedDict[_Layout[_P], None] = OrderedDict()
        self._size = 0
        self._max_bytes = max_bytes
        self._max_layouts = max_layouts

    def __len__(self) -> int:
        return len(self._layouts)

    def match(self, raw: bytes) -> Match[_P] | None:
        """The remembered body C{raw} resends, with C{raw}'s new messages decoded; None if there is
        none (or what lies between is not a list of JSON values: the whole body's decoding says why)."""
        for layout in reversed(self._layouts):
            if not raw.startswith(layout.head) or not raw.endswith(layout.suffix):
                continue
            end = len(raw) - len(layout.suffix)
            position, known = len(layout.head), layout.first
            for segment in layout.segments:
                if position + len(segment) > end or not raw.startswith(segment, position):
                    break
                position += len(segment)
                known += 1
            if position > end:
                continue
            middle = raw[position:end]
            values = _values(middle, after=known > 0)
            if values is not None:
                self._layouts.move_to_end(layout)
                return Match(layout, known, values, middle)
        return None

    def remember(self, raw: bytes, body: dict[str, Any], keys: Sequence[bytes], parts: Sequence[_P], rest: Any) -> None:
        """Remember the layout of C{raw}, decoded as C{body}, whose messages encode as C{keys} and mean
        C{parts}; only if C{raw} is exactly orjson's encoding of C{body}."""
        if not keys or not _looks_compact(raw) or jsonio.dumps(body) != raw:
            return
        before = {}
        for name, value in body.items():
            if name == "messages":
                break
            before[name] = value
        opened = len(jsonio.dumps(before)) - 1 + (1 if before else 0) + len(_MESSAGES)  # the "[" of messages
        if raw[opened : opened + 1] != b"[":
            return  # never expected: the encoding says where it is
        ends = [opened + 1]
        for index, key in enumerate(keys):
            ends.append(ends[-1] + (1 if index else 0) + len(key))
        first = max(0, len(keys) - KEEP)
        self._add(raw, first, ends[first:], parts, rest)

    def extend(self, match: Match[_P], raw: bytes, keys: Sequence[bytes], parts: Sequence[_P]) -> None:
        """Remember the layout of C{raw}, the body of C{match}, whose new messages encode as C{keys}
        and mean C{parts}, in place of the layout it matched; only if its new messages are written as
        orjson writes them (the bytes around them are)."""
        layout, known = match.layout, match.known
        if not keys and known == layout.first + len(layout.segments):
            return  # the very body again (a retry): its layout is the one it matched
        if keys and match.middle != (b"," if known else b"") + b",".join(keys):
            return
        count = known + len(keys)
        first = max(0, count - KEEP)
        if first < layout.first:
            return  # fewer messages than before: where the earlier ones end is not known
        start = min(first, known)
        ends = [layout.end_of(position) for position in range(start, known + 1)]
        for index, key in enumerate(keys):
            ends.append(ends[-1] + (1 if known + index else 0) + len(key))
        self._forget(layout)
        self._add(raw, first, ends[first - start :], [*match.parts, *parts], layout.rest)

    def _add(self, raw: bytes, first: int, ends: Sequence[int], parts: Sequence[_P], rest: Any) -> None:
        """Remember C{raw} cut where its messages C{first}, C{first + 1}, ... end (C{ends})."""
        if raw[ends[-1] : ends[-1] + 1] != b"]":
            return  # not where the messages end: never expected, but then nothing is known
        segments = tuple(raw[ends[index] : ends[index + 1]] for index in range(len(ends) - 1))
        layout = _Layout(raw[: ends[0]], first, segments, raw[ends[-1] :], tuple(parts), rest)
        if layout.size > self._max_bytes:
            return
        self._layouts[layout] = None
        self._size += layout.size
        while self._size > self._max_bytes or len(self._layouts) > self._max_layouts:
            self._forget(next(iter(self._layouts)))

    def _forget(self, layout: _Layout[_P]) -> None:
        if layout in self._layouts:
            del self._layouts[layout]
            self._size -= layout.size


def _values(middle: bytes, *, after: bool) -> list[Any] | None:
    """The JSON values C{middle} lists, separated by commas (and led by one C{after} a message)."""
    if not middle:
        return []
    if after:
        if not middle.startswith(b","):
            return None
        middle = middle[1:]
    try:
        values = orjson.loads(b"[" + middle + b"]")
    except orjson.JSONDecodeError:
        return None
    return values if isinstance(values, list) and values else None


def _looks_compact(raw: bytes) -> bool:
    """Whether C{raw} may be orjson's encoding (checked before encoding the whole body to be sure):
    an object whose first bytes have no space after a colon or a comma."""
    return raw.startswith(b'{"') and b'": ' not in raw[:256] and b', "' not in raw[:256]

"""Server-sent events: an incremental parser (bytes in, events out) and an encoder.

The parser follows the WHATWG rules that matter for LLM streams: C{\\n}, C{\\r\\n} and
C{\\r} line ends (also split across reads), comment lines (C{: OPENROUTER PROCESSING}),
C{data:} with or without the space, several C{data} lines joined by C{\\n}, C{event:}
names, and events only dispatched on a blank line, never with empty data. It never
interprets C{[DONE]}: that is the caller's business, on a whole data payload.
"""

from __future__ import annotations

from typing import Any

from attrs import frozen

from ccproxy import jsonio

__all__ = ["SSEEvent", "SSEParser", "SSEError", "encode_event", "MAX_EVENT_BYTES"]

MAX_EVENT_BYTES = 16 * 1024 * 1024


class SSEError(ValueError):
    """The byte stream cannot be an SSE stream (an event or line beyond the size cap)."""


@frozen
class SSEEvent:
    """One dispatched event: its C{event:} name (or C{None}) and its joined data."""

    event: str | None
    data: str


class SSEParser:
    """Feed bytes as they arrive; get complete events back.

    Memory and time stay linear whatever the upstream sends: an unterminated line is
    kept as the pieces it arrived in (joined once, when it ends), and neither one line
    nor everything between two dispatched events may exceed C{max_event_bytes} --
    the bound on an upstream that floods without a newline, or with lines that never
    make an event.
    """

    __slots__ = ("_pending", "_length", "_data", "_event", "_size", "_max")

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._pending: list[bytes] = []  # the unterminated line, maybe ending in "\r"
        self._length = 0
        self._data: list[str] = []
        self._event: str | None = None
        self._size = 0  # bytes of lines since the last dispatched event
        self._max = max_event_bytes

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Parse C{chunk}; return the events it completes, in order.

        @raise SSEError: an unterminated line, or the lines since the last event,
            exceed the size cap.
        """
        pending = self._pending
        if not pending and not self._data and self._event is None and _one_data_event(chunk):
            # The usual read, one per HTTP chunk: exactly one "data: ...\n\n" event. The
            # same as the general path below, without splitting lines.
            value = chunk[6:-2]
            if not value:
                return []  # an empty data buffer dispatches nothing
            self._grow(len(value))
            self._size = 0
            return [SSEEvent(None, value.decode("utf-8", "replace"))]
        if pending and b"\n" not in chunk and b"\r" not in chunk and not pending[-1].endswith(b"\r"):
            # The line only grows: keep the piece (joining now would copy it every read).
            pending.append(chunk)
            self._length += len(chunk)
            if self._length > self._max:
                raise SSEError("SSE line exceeds the size limit")
            return []
        data = b"".join(pending) + chunk if pending else chunk
        carriage = b""
        if data.endswith(b"\r"):
            # The matching \n may be in the next read: decide then.
            data, carriage = data[:-1], b"\r"
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = data.split(b"\n")
        rest = lines.pop() + carriage
        if len(rest) > self._max:
            raise SSEError("SSE line exceeds the size limit")
        self._pending = [rest] if rest else []
        self._length = len(rest)
        events: list[SSEEvent] = []
        for line in lines:
            if not line:
                joined = "\n".join(self._data)
                if joined:  # an empty data buffer dispatches nothing (WHATWG)
                    events.append(SSEEvent(self._event, joined))
                    self._size = 0
                self._data = []
                self._event = None
            elif line[0] == 0x3A:  # ":" comment
                self._grow(len(line))
            else:
                self._field(line)
        return events

    def _field(self, line: bytes) -> None:
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._grow(len(value))
            self._data.append(value.decode("utf-8", "replace"))
            return
        self._grow(len(line))
        if name == b"event":
            self._event = value.decode("utf-8", "replace")

    def _grow(self, size: int) -> None:
        self._size += size
        if self._size > self._max:
            raise SSEError(f"no complete SSE event within {self._max} bytes")

    def close(self) -> list[SSEEvent]:
        """The end of the byte stream: dispatch a final event that lacked its blank line."""
        events = self.feed(b"\n\n") if (self._pending or self._data) else []
        self._pending = []
        self._length = 0
        return events


def _one_data_event(chunk: bytes) -> bool:
    """Whether C{chunk} is C{data: <payload>\\n\\n} with no other line end in it."""
    return chunk[:6] == b"data: " and chunk.find(b"\n") == len(chunk) - 2 and chunk[-1:] == b"\n" and b"\r" not in chunk


_EVENT_NAMES = (
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
)
_EVENT_LINES = {name: f"event: {name}\ndata: ".encode() for name in _EVENT_NAMES}


def encode_event(name: str, payload: Any) -> bytes:
    """One SSE event with its C{event:} line (Claude Code dispatches on it alone).

    A lone surrogate in a string (upstream JSON may carry one) is written as its
    C{\\u} escape, so the line stays valid UTF-8 and decodes to the same text.
    """
    head = _EVENT_LINES.get(name)
    if head is None:
        head = f"event: {name}\ndata: ".encode()
    return head + jsonio.dumps(payload) + b"\n\n"

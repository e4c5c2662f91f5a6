"""Where a converted stream goes: the client's response, in one of two shapes.

L{ClientStream} hands every batch of converted events to a L{Sink}. A client that asked
for C{stream: true} gets an L{SSESink}, which writes each batch as SSE at once; any
other client gets a L{MessageSink}, which holds the events and answers with the one
JSON message they assemble into (or with the HTTP error the stream ended in).
"""

from __future__ import annotations

from typing import Protocol as TypingProtocol

from twisted.logger import Logger
from twisted.web.server import Request

from ccproxy.convert.stream import Event
from ccproxy.errors import ERROR_TYPES, ApiError
from ccproxy.grammar import StreamErrorEvent, final_message
from ccproxy.sse import encode_event
from ccproxy.web.errors import write_error, write_json

__all__ = ["Sink", "SSESink", "MessageSink"]

_log = Logger()
_STATUS_FOR_TYPE = {kind: status for status, kind in ERROR_TYPES.items() if status != 405}
_PING = encode_event("ping", {"type": "ping"})


class Sink(TypingProtocol):
    """Where converted events go."""

    streams: bool

    def begin(self) -> None:
        """The response starts (status and headers)."""

    def events(self, events: list[Event]) -> None:
        """Deliver converted events, in order."""

    def ping(self) -> None:
        """Keep an idle client connection alive."""

    def end(self) -> None:
        """Finish the client response."""


class SSESink:
    """Streams events to the client as SSE, one write per batch, never held back."""

    streams = True

    def __init__(self, request: Request, request_id: str) -> None:
        self._request = request
        self._request_id = request_id

    def begin(self) -> None:
        request = self._request
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"x-accel-buffering", b"no")

    def events(self, events: list[Event]) -> None:
        self._request.write(b"".join([encode_event(name, payload) for name, payload in events]))

    def ping(self) -> None:
        self._request.write(_PING)

    def end(self) -> None:
        self._request.finish()


class MessageSink:
    """Collects events and answers with one JSON message (or the error they ended in)."""

    streams = False

    def __init__(self, request: Request, request_id: str) -> None:
        self._request = request
        self._request_id = request_id
        self._events: list[Event] = []

    def begin(self) -> None:
        pass

    def events(self, events: list[Event]) -> None:
        self._events.extend(events)

    def ping(self) -> None:
        pass

    def end(self) -> None:
        try:
            message = final_message(self._events, keep_events=False, checked=False)
        except StreamErrorEvent as failed:
            kind = str(failed.error.get("type", "api_error"))
            error = ApiError(_STATUS_FOR_TYPE.get(kind, 500), kind, str(failed.error.get("message", "")))
            write_error(self._request, error, self._request_id)
            return
        except (LookupError, TypeError, ValueError) as wrong:  # a converter bug, not the upstream's
            _log.error("could not assemble the converted stream: {error!r}", error=wrong)
            error = ApiError(500, "api_error", "ccproxy produced an invalid message; see its log")
            write_error(self._request, error, self._request_id)
            return
        write_json(self._request, 200, message)

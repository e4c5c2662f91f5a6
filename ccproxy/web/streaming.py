"""The relay: upstream body protocol and client push producer in one object.

Upstream bytes arrive in L{Relay.dataReceived}, go through the SSE parser and the pure
stream converter, and each resulting batch of Anthropic events is handed to a sink at
once: L{SSESink} writes them to the client as they come, L{MessageSink} assembles one
JSON message for clients that did not ask to stream. When the client cannot keep up,
twisted.web pauses the relay, which pauses the upstream socket, so back-pressure reaches
the provider; when the client goes away, the upstream connection is closed at once.
"""

from __future__ import annotations

import json
from typing import Any, Protocol as TypingProtocol

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IDelayedCall, IPushProducer
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Request
from zope.interface import implementer

from ccproxy.convert.response import completion_to_chunk
from ccproxy.convert.stream import Event, StreamConverter
from ccproxy.errors import ERROR_TYPES, ApiError
from ccproxy.grammar import GrammarError, StreamErrorEvent, final_message
from ccproxy.logs import RequestRecord, debug_dump
from ccproxy.sse import SSEError, SSEParser, encode_event
from ccproxy.web.errors import write_error, write_json

__all__ = ["Relay", "Sink", "SSESink", "MessageSink", "MAX_JSON_BODY"]

_log = Logger()
MAX_JSON_BODY = 64 * 1024 * 1024
_STATUS_FOR_TYPE = {kind: status for status, kind in ERROR_TYPES.items() if status != 405}


class Sink(TypingProtocol):
    """Where converted events go."""

    def begin(self) -> None:
        """The upstream answered 200: the response may start."""

    def events(self, events: list[Event]) -> None:
        """Deliver converted events, in order."""

    def ping(self) -> None:
        """Keep an idle client connection alive, if the sink streams."""

    def end(self) -> None:
        """The exchange is over: finish the client response."""


class SSESink:
    """Streams events to the client as SSE, one write per batch, never held back."""

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
        self._request.write(b"".join(encode_event(name, payload) for name, payload in events))

    def ping(self) -> None:
        self._request.write(encode_event("ping", {"type": "ping"}))

    def end(self) -> None:
        self._request.finish()


class MessageSink:
    """Collects events and answers with one JSON message (or the error they ended in)."""

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
            message = final_message(self._events)
        except StreamErrorEvent as failed:
            kind = str(failed.error.get("type", "api_error"))
            error = ApiError(_STATUS_FOR_TYPE.get(kind, 500), kind, str(failed.error.get("message", "")))
            write_error(self._request, error, self._request_id)
            return
        except GrammarError as wrong:
            _log.error("converted stream broke the grammar: {error}", error=str(wrong))
            error = ApiError(500, "api_error", "ccproxy produced an invalid message; see its log")
            write_error(self._request, error, self._request_id)
            return
        write_json(self._request, 200, message)


@implementer(IPushProducer)
class Relay(Protocol):
    """Carries one upstream body to one client. See the module docstring.

    @param json_body: the upstream answered with a JSON completion instead of SSE;
        collect it and convert it as one chunk.
    """

    def __init__(
        self,
        request: Request,
        converter: StreamConverter,
        sink: Sink,
        clock: Any,
        record: RequestRecord,
        *,
        streaming: bool,
        ping_interval: float,
        idle_timeout: float,
        json_body: bool = False,
        debug_secrets: tuple[str | None, ...] | None = None,
    ) -> None:
        self._request = request
        self._record = record
        self._debug_secrets = debug_secrets
        self._converter = converter
        self._sink = sink
        self._clock = clock
        self._streaming = streaming
        self._ping_interval = ping_interval
        self._idle_timeout = idle_timeout
        self._json_body = json_body
        self._parser = SSEParser()
        self._json_parts: list[bytes] = []
        self._json_size = 0
        self._done = False
        self._paused = False
        self._client_gone = False
        self._finished = False
        self._producing = False
        self._last_write = 0.0
        self._ping: LoopingCall | None = None
        self._idle: IDelayedCall | None = None

    # -- upstream body protocol --------------------------------------------------------

    def connectionMade(self) -> None:
        """The upstream body starts: begin the client response."""
        if self._client_gone:
            self.transport.stopProducing()  # type: ignore[union-attr]
            return
        self._sink.begin()
        if self._streaming:
            self._request.registerProducer(self, True)
            self._producing = True
        self._emit(self._converter.start())
        if self._streaming:
            self._ping = LoopingCall(self._keepalive)
            self._ping.clock = self._clock
            self._ping.start(self._ping_interval, now=False)
        self._idle = self._clock.callLater(self._idle_timeout, self._idle_expired)

    def dataReceived(self, data: bytes) -> None:
        """Parse, convert and forward whatever events C{data} completes."""
        if self._idle is not None and self._idle.active():
            self._idle.reset(self._idle_timeout)
        if self._converter.ended:
            return
        if self._debug_secrets is not None:
            debug_dump("upstream bytes", self._record.request_id, data, self._debug_secrets)
        if self._json_body:
            self._collect_json(data)
            return
        try:
            sse_events = self._parser.feed(data)
        except SSEError as error:
            self._abort(ApiError(502, "api_error", f"{self._converter.provider}: {error}"))
            return
        for sse in sse_events:
            if not self._handle_data(sse.data):
                self._stop_upstream()  # the stream is over: stop reading (and paying)
                return

    def _handle_data(self, data: str) -> bool:
        """Convert one SSE data payload; return whether the stream goes on."""
        if data == "[DONE]":
            self._done = True
            return True
        try:
            chunk = json.loads(data)
        except ValueError:
            preview = data[:120]
            self._abort(ApiError(502, "api_error", f"{self._converter.provider}: not a JSON chunk: {preview!r}"))
            return False
        self._emit(self._converter.feed(chunk))
        return not self._converter.ended

    def _collect_json(self, data: bytes) -> None:
        self._json_size += len(data)
        if self._json_size > MAX_JSON_BODY:
            self._abort(ApiError(502, "api_error", f"{self._converter.provider}: response too large"))
            return
        self._json_parts.append(data)

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        """The upstream body ended (or broke): end the client response properly."""
        self._stop_timers()
        if not self._converter.ended and not self._client_gone:
            if self._json_body:
                self._finish_json()
            else:
                for sse in self._parser.close():
                    self._handle_data(sse.data)
            # A body that ends without [DONE] and without a finish_reason was cut short,
            # however cleanly the connection closed: the converter reports that.
            self._emit(self._converter.finish(self._done))
        self._finish()

    def _finish_json(self) -> None:
        try:
            completion = json.loads(b"".join(self._json_parts))
        except ValueError:
            self._emit(self._converter.fail(ApiError(502, "api_error", f"{self._converter.provider}: invalid JSON response")))
            return
        self._emit(self._converter.feed(completion_to_chunk(completion)))
        self._done = True

    # -- client push producer ----------------------------------------------------------

    def pauseProducing(self) -> None:
        """The client is slow: stop reading the upstream socket."""
        self._paused = True
        if self.transport is not None:
            self.transport.pauseProducing()  # type: ignore[attr-defined]

    def resumeProducing(self) -> None:
        """The client drained: read the upstream socket again."""
        self._paused = False
        if self.transport is not None:
            self.transport.resumeProducing()  # type: ignore[attr-defined]

    def stopProducing(self) -> None:
        """The client connection is gone."""
        self.cancel()

    def cancel(self) -> None:
        """Stop everything: the client left, so close the upstream connection now."""
        if self._client_gone:
            return
        self._client_gone = True
        self._stop_timers()
        self._stop_upstream()

    # -- helpers -----------------------------------------------------------------------

    def _emit(self, events: list[Event]) -> None:
        if not events or self._client_gone:
            return
        self._sink.events(events)
        self._last_write = now = self._clock.seconds()
        record = self._record
        if record.first_token is None and events[0][0] != "message_start":
            record.first_token = now
        last_name, last_payload = events[-1]
        if last_name == "message_stop" and len(events) > 1:
            record.usage = events[-2][1].get("usage")
        elif last_name == "error":
            record.outcome = "error"
            record.error = str(last_payload["error"].get("message", ""))
        if self._debug_secrets is not None:
            debug_dump("client events", record.request_id, events, self._debug_secrets)

    def _keepalive(self) -> None:
        if self._paused or self._client_gone:
            return
        if self._clock.seconds() - self._last_write >= self._ping_interval * 0.9:
            self._sink.ping()
            self._last_write = self._clock.seconds()

    def _idle_expired(self) -> None:
        self._idle = None
        message = f"{self._converter.provider}: no data from upstream for {self._idle_timeout:g} s"
        self._abort(ApiError(504, "timeout_error", message))

    def _abort(self, error: ApiError) -> None:
        """End the client response with C{error} and drop the upstream connection."""
        self._emit(self._converter.fail(error))
        self._stop_upstream()

    def _stop_upstream(self) -> None:
        if self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]

    def _stop_timers(self) -> None:
        if self._ping is not None and self._ping.running:
            self._ping.stop()
        self._ping = None
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._producing:
            self._request.unregisterProducer()
        if not self._client_gone:
            self._sink.end()

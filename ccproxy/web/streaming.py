"""The relay that carries the upstream body to the client.

L{Relay} is the upstream body protocol and, at the same time, the client connection's push
producer: when the client cannot keep up, twisted.web pauses the relay, which pauses the
upstream socket, so back-pressure reaches the provider; when the client goes away, the
upstream connection is closed at once. What the client sees (the stream converter, a sink
from L{ccproxy.web.sinks}, pings, the log record) is L{ccproxy.web.clientstream.ClientStream}.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IDelayedCall, IPushProducer
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.server import Request
from zope.interface import implementer

from ccproxy import jsonio
from ccproxy.convert.response import completion_to_chunk
from ccproxy.errors import ApiError
from ccproxy.logs import debug_dump
from ccproxy.sse import SSEError, SSEEvent, SSEParser
from ccproxy.web.clientstream import ClientStream

__all__ = ["Relay", "MAX_JSON_BODY", "EVENTS_PER_TURN"]

MAX_JSON_BODY = 64 * 1024 * 1024
# Upstream events converted per reactor turn for a streaming client. Twisted sends what was
# written only when the reactor next polls, so a read that brings hundreds of events (a fast
# provider, or one that sends a long answer at once) would otherwise reach the client only
# after all of them were converted: the first token would wait for the last.
EVENTS_PER_TURN = 32
# Events converted before the relay watches for the end of the reactor turn (one timer per
# that many events, rather than one per event of a slowly paced stream); the events converted
# after that, until the turn ends, reach the client in one write.
_WATCH_AFTER = 4


@implementer(IPushProducer)
class Relay(Protocol):
    """Carries one upstream body to one client. See the module docstring.

    Events wait in a queue only when more than L{EVENTS_PER_TURN} of them arrive in one
    reactor turn for a streaming client (twisted.web's client delivers each HTTP chunk on
    its own, so a turn's read can bring hundreds): the rest are converted on the following
    turns, each after the reactor has sent what the previous one wrote, with the upstream
    socket paused meanwhile (and while the client is slow). The events a turn converts after
    its first few are held and written together when the turn ends, before the reactor polls,
    so a burst costs twisted.web a few writes per turn rather than one per event, and the
    client gets them no later. The end of the upstream body is acted on once the queue is
    empty, so nothing is reordered or lost.

    @param json_body: the upstream answered with a JSON completion instead of SSE;
        collect it and convert it as one chunk.
    """

    def __init__(
        self,
        request: Request,
        client: ClientStream,
        clock: Any,
        *,
        idle_timeout: float,
        json_body: bool = False,
        debug_secrets: tuple[str | None, ...] | None = None,
    ) -> None:
        self._request = request
        self._client = client
        self._converter = client.converter
        self._clock = clock
        self._idle_timeout = idle_timeout
        self._json_body = json_body
        self._debug_secrets = debug_secrets
        self._parser = SSEParser()
        self._json_parts: list[bytes] = []
        self._json_size = 0
        self._done = False
        self._client_gone = False
        self._finished = False
        self._producing = False
        self._idle: IDelayedCall | None = None
        self._queue: deque[SSEEvent] = deque()
        self._spent = 0  # events converted since the last end of a reactor turn
        self._turn_end: IDelayedCall | None = None  # runs when the current reactor turn is over
        self._resume: IDelayedCall | None = None  # converts what waits, after the reactor polled
        self._held = False  # whether the upstream socket is paused (by the client or the queue)
        self._ended: Failure | None = None  # the upstream body's end, once it came

    # -- upstream body protocol --------------------------------------------------------

    def connectionMade(self) -> None:
        """The upstream body starts: make sure the client response has begun."""
        if self._client_gone:
            self.transport.stopProducing()  # type: ignore[union-attr]
            return
        self._client.begin()
        if self._client.streams:
            self._request.registerProducer(self, True)
            self._producing = True
        self._idle = self._clock.callLater(self._idle_timeout, self._idle_expired)

    def dataReceived(self, data: bytes) -> None:
        """Parse, convert and forward whatever events C{data} completes."""
        if self._idle is not None and (self._json_body or b"\n" in data or b"\r" in data):
            # Silence is measured in lines: bytes that never end one (an upstream that
            # drips a line forever) are no sign of life.
            self._idle.reset(self._idle_timeout)
        if self._converter.ended:
            return
        if self._debug_secrets is not None:
            debug_dump("upstream bytes", self._client.request_id, data, self._debug_secrets)
        if self._json_body:
            self._collect_json(data)
            return
        try:
            sse_events = self._parser.feed(data)
        except SSEError as error:
            self.abort(ApiError(502, "api_error", f"{self._converter.provider}: {error}"))
            return
        self._queue.extend(sse_events)
        if self._resume is None:
            self._convert_queued()

    def _convert_queued(self) -> None:
        """Convert queued events: all of them, or what is left of this turn's share for a
        streaming client (the rest waits for L{_end_turn})."""
        queue = self._queue
        streams = self._client.streams
        while queue and not self._client.paused:
            if streams:
                if self._spent == EVENTS_PER_TURN:
                    break
                self._spent += 1
                if self._spent == _WATCH_AFTER:
                    self._turn_end = self._clock.callLater(0, self._end_turn)
                    self._client.hold()  # the rest of this turn's events go out in one write
            if not self._handle_data(queue.popleft().data):
                self._drop_queue()
                self._stop_upstream()  # the stream is over: stop reading (and paying)
                break
        self._hold_upstream()
        if not queue and self._ended is not None:
            self._end(self._ended)

    def _end_turn(self) -> None:
        """The reactor turn that converted events is over: what waits is converted on the
        next one, after the reactor has sent what this one wrote."""
        self._turn_end = None
        self._spent = 0
        self._client.flush()
        if self._queue:
            self._resume = self._clock.callLater(0, self._resume_conversion)

    def _resume_conversion(self) -> None:
        self._resume = None
        self._convert_queued()

    def _drop_queue(self) -> None:
        """Forget the events that wait (the converted ones still go out)."""
        self._queue.clear()
        for call in (self._turn_end, self._resume):
            if call is not None and call.active():
                call.cancel()
        self._turn_end = self._resume = None
        self._spent = 0
        self._client.flush()

    def _hold_upstream(self) -> None:
        """Pause the upstream socket while the client is slow or events wait; else read on."""
        hold = self._client.paused or bool(self._queue)
        if hold != self._held and self.transport is not None:
            self._held = hold
            if hold:
                self.transport.pauseProducing()  # type: ignore[attr-defined]
            else:
                self.transport.resumeProducing()  # type: ignore[attr-defined]

    def _handle_data(self, data: str) -> bool:
        """Convert one SSE data payload; return whether the stream goes on."""
        if data == "[DONE]":
            self._done = True
            return True
        try:
            chunk = jsonio.loads(data)
        except ValueError:
            preview = data[:120]
            self.abort(ApiError(502, "api_error", f"{self._converter.provider}: not a JSON chunk: {preview!r}"))
            return False
        self._client.emit(self._converter.feed(chunk))
        return not self._converter.ended

    def _collect_json(self, data: bytes) -> None:
        self._json_size += len(data)
        if self._json_size > MAX_JSON_BODY:
            self.abort(ApiError(502, "api_error", f"{self._converter.provider}: response too large"))
            return
        self._json_parts.append(data)

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        """The upstream body ended (or broke): end the client response properly, after the
        events still queued."""
        self._cancel_idle()
        self._ended = reason
        if not self._queue:
            self._end(reason)

    def _end(self, reason: Failure) -> None:
        if self._finished:
            return
        self._drop_queue()
        if not self._converter.ended and not self._client_gone:
            if self._json_body:
                self._finish_json()
            else:
                for sse in self._parser.close():
                    self._handle_data(sse.data)
            # A body that ends without [DONE] and without a finish_reason was cut short,
            # however cleanly the connection closed: the converter reports that.
            self._client.emit(self._converter.finish(self._done))
        self._finish()

    def _finish_json(self) -> None:
        try:
            completion = jsonio.loads(b"".join(self._json_parts))
        except ValueError:
            self._client.fail(ApiError(502, "api_error", f"{self._converter.provider}: invalid JSON response"))
            return
        self._client.emit(self._converter.feed(completion_to_chunk(completion)))
        self._done = True

    # -- client push producer ----------------------------------------------------------

    def pauseProducing(self) -> None:
        """The client is slow: stop reading the upstream socket (and converting)."""
        self._client.paused = True
        self._hold_upstream()

    def resumeProducing(self) -> None:
        """The client drained: convert what waits, then read the upstream socket again."""
        self._client.paused = False
        if self._resume is None:
            self._convert_queued()

    def stopProducing(self) -> None:
        """The client connection is gone."""
        self.cancel()

    def cancel(self) -> None:
        """Stop everything: the client left, so close the upstream connection now."""
        if self._client_gone:
            return
        self._client_gone = True
        self._client.abandon()
        self._cancel_idle()
        self._drop_queue()
        self._stop_upstream()
        if self._ended is not None:  # the upstream had ended while events waited
            self._finish()

    # -- helpers -----------------------------------------------------------------------

    def _idle_expired(self) -> None:
        self._idle = None
        message = f"{self._converter.provider}: no data from upstream for {self._idle_timeout:g} s"
        self.abort(ApiError(504, "timeout_error", message))

    def abort(self, error: ApiError) -> None:
        """End the client response with C{error} and drop the upstream connection."""
        self._client.fail(error)
        self._drop_queue()
        self._stop_upstream()

    def _stop_upstream(self) -> None:
        if self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]

    def _cancel_idle(self) -> None:
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._producing and self._request.channel is not None:
            self._request.unregisterProducer()
        if not self._client_gone:
            self._client.end()

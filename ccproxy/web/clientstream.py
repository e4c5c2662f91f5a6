"""What one client receives: converted events, pings, the end (L{ClientStream}).

L{ccproxy.web.streaming.Relay} feeds it from the upstream body; the exchange feeds it the
error when there is no body to relay.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ccproxy.convert.stream import Event, StreamConverter
from ccproxy.errors import ApiError
from ccproxy.grammar import GrammarError, StreamGrammar
from ccproxy.logs import RequestRecord, debug_dump
from ccproxy.web.sinks import Sink

__all__ = ["ClientStream"]

_log = Logger()


class ClientStream:
    """What one client receives: converted events, pings, and the end.

    @param debug_secrets: when not C{None}, every batch is dumped (redacted) to the log.
    """

    def __init__(
        self,
        converter: StreamConverter,
        sink: Sink,
        record: RequestRecord,
        clock: Any,
        ping_interval: float,
        debug_secrets: tuple[str | None, ...] | None = None,
    ) -> None:
        self.converter = converter
        self.started = False
        self.paused = False
        self._sink = sink
        self._record = record
        self._clock = clock
        self._ping_interval = ping_interval
        self._debug_secrets = debug_secrets
        self._last_write = 0.0
        self._ping: LoopingCall | None = None
        self._closed = False
        self._held: list[Event] | None = None  # events emitted while held, not yet delivered
        # In debug mode every stream is checked against the Anthropic event grammar.
        self._grammar = StreamGrammar() if debug_secrets is not None else None

    @property
    def request_id(self) -> str:
        """The id of the request this stream answers."""
        return self._record.request_id

    @property
    def streams(self) -> bool:
        """Whether the client receives SSE (rather than one JSON message)."""
        return self._sink.streams

    def begin(self) -> None:
        """Start the response: headers, C{message_start}, then pings during silence."""
        if self.started:
            return
        self.started = True
        self._sink.begin()
        self.emit(self.converter.start())
        if self._sink.streams:
            self._ping = LoopingCall(self._keepalive)
            self._ping.clock = self._clock
            self._ping.start(self._ping_interval, now=False)

    def emit(self, events: list[Event]) -> None:
        """Hand C{events} to the sink (or keep them, while held) and note what the log line
        needs."""
        if not events or self._closed:
            return
        if self._held is None:
            self._sink.events(events)
        else:
            self._held.extend(events)
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
            self._check_grammar(events)

    def hold(self) -> None:
        """Keep what is emitted until L{flush}: one write for many events.

        The relay holds events only until the end of the reactor turn that converted them:
        Twisted sends nothing before the reactor next polls, so holding them that long costs
        the client no time, and it spares twisted.web a chunk per event.
        """
        if self._held is None and not self._closed:
            self._held = []

    def flush(self) -> None:
        """Deliver what was held, in one batch, and stop holding."""
        held, self._held = self._held, None
        if held and not self._closed:
            self._sink.events(held)

    def _check_grammar(self, events: list[Event]) -> None:
        if self._grammar is None:
            return
        try:
            for name, payload in events:
                self._grammar.feed(name, payload)
        except GrammarError as wrong:
            self._grammar = None  # one report per stream
            _log.error(
                "request {request_id}: stream grammar violation: {error}",
                request_id=self._record.request_id,
                error=str(wrong),
            )

    def fail(self, error: ApiError) -> None:
        """End the stream with C{error} (an C{error} event, or the sink's HTTP error)."""
        self.emit(self.converter.fail(error))

    def end(self) -> None:
        """Stop pinging and finish the response (once)."""
        if self._closed:
            return
        self.flush()
        self._stop_pings()
        self._closed = True
        self._sink.end()

    def abandon(self) -> None:
        """The client is gone: stop pinging, write nothing more."""
        self._stop_pings()
        self._closed = True
        self._held = None

    def _keepalive(self) -> None:
        if self.paused or self._closed:
            return
        if self._clock.seconds() - self._last_write >= self._ping_interval * 0.9:
            self.flush()  # never a ping before events converted earlier
            self._sink.ping()
            self._last_write = self._clock.seconds()

    def _stop_pings(self) -> None:
        if self._ping is not None and self._ping.running:
            self._ping.stop()
        self._ping = None

"""A byte-level faulty upstream for the hardening tests (127.0.0.1 only).

L{FaultyUpstream} reads one HTTP request per connection and then runs a L{Fault}: a
function that writes whatever bytes it likes, when it likes (stall, drip, garbage,
close mid-chunk, flood). Every connection is recorded, so a test can check that the
proxy gave each one up: a connection whose response the server did not finish must
have been closed by the proxy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IDelayedCall, IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"

Fault = Callable[["UpstreamConnection"], None]


class UpstreamConnection(Protocol):
    """One connection from the proxy: reads a request, then lets the fault act (again
    for the next request, once the fault has answered the last one completely)."""

    def __init__(self, fault: Fault, clock: Any) -> None:
        self.fault = fault
        self.clock = clock
        self.buffer = b""
        self.request: bytes | None = None
        self.answered = False  # the fault wrote a complete response
        self.closed = False
        self.written = 0
        self.timers: list[IDelayedCall] = []
        self.producer: Flood | None = None

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if self.request is not None:
            if not self.answered:
                return
            # A kept-alive connection from the proxy's pool: the next request.
            self.request, self.answered, self.buffer = None, False, b""
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        length = 0
        for line in self.buffer[:head_end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(self.buffer) < head_end + 4 + length:
            return
        self.request = self.buffer
        self.factory.requests += 1
        self.fault(self)

    def write(self, data: bytes) -> None:
        """Send raw bytes (nothing once the proxy has gone)."""
        if not self.closed:
            self.written += len(data)
            self.transport.write(data)  # type: ignore[union-attr]

    def later(self, delay: float, action: Callable[[], None]) -> None:
        """Run C{action} after C{delay} seconds, unless the connection is gone by then."""

        def run() -> None:
            if not self.closed:
                action()

        self.timers.append(self.clock.callLater(delay, run))

    def close(self) -> None:
        """Close the connection from the server side."""
        if not self.closed:
            self.transport.loseConnection()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:  # noqa: N802
        self.closed = True
        for timer in self.timers:
            if timer.active():
                timer.cancel()
        if self.producer is not None:
            self.producer.stopProducing()


class FaultyUpstream(Factory):
    """Serves every connection with the same fault; remembers the connections."""

    def __init__(self, fault: Fault, clock: Any) -> None:
        self.fault = fault
        self.clock = clock
        self.connections: list[UpstreamConnection] = []
        self.requests = 0

    def buildProtocol(self, addr: Any) -> UpstreamConnection:  # noqa: N802
        connection = UpstreamConnection(self.fault, self.clock)
        connection.factory = self
        self.connections.append(connection)
        return connection

    def held(self) -> list[UpstreamConnection]:
        """Connections with an unfinished response that the proxy has not closed."""
        return [c for c in self.connections if not c.answered and not c.closed]


@implementer(IPushProducer)
class Flood:
    """Writes C{block} as fast as the proxy reads it, forever (with back-pressure)."""

    def __init__(self, connection: UpstreamConnection, block: bytes) -> None:
        self.connection = connection
        self.block = block
        self.paused = False
        self.stopped = False
        connection.producer = self
        connection.transport.registerProducer(self, True)  # type: ignore[union-attr]
        self.resumeProducing()

    def pauseProducing(self) -> None:  # noqa: N802
        self.paused = True

    def resumeProducing(self) -> None:  # noqa: N802
        self.paused = False
        self._pump()

    def stopProducing(self) -> None:  # noqa: N802
        self.stopped = True

    def _pump(self) -> None:
        if self.paused or self.stopped or self.connection.closed:
            return
        for _ in range(16):
            self.connection.write(self.block)
            if self.paused:
                return
        self.connection.clock.callLater(0, self._pump)


def chunk(data: bytes) -> bytes:
    """One HTTP chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def listen(reactor: Any, fault: Fault) -> tuple[FaultyUpstream, Any]:
    """Serve C{fault} on 127.0.0.1:<free port>; return the factory and the port."""
    factory = FaultyUpstream(fault, reactor)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    return factory, port

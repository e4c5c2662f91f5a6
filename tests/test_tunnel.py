"""The CONNECT tunnel's protocol, byte by byte, on an in-memory transport and a fake clock."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from zope.interface import implementer

from ccproxy.tunnel import MAX_ANSWER_BYTES, TunnelEndpoint, TunnelError


class Inner(Protocol):
    """The protocol the tunnel carries (in ccproxy, TLS with the HTTP client inside)."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.lost: Any = None

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.received.append(data)

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
        self.lost = reason


@implementer(IStreamClientEndpoint)
class ToTheProxy:
    """Connects at once to an in-memory transport, standing for the proxy's socket."""

    def __init__(self) -> None:
        self.transport = StringTransport()
        self.protocol: Any = None

    def connect(self, factory: Any) -> Deferred[Any]:
        self.protocol = factory.buildProtocol(None)
        self.protocol.makeConnection(self.transport)
        return succeed(self.protocol)


def open_tunnel(authorization: bytes | None = None) -> tuple[ToTheProxy, Clock, Deferred[Any], list[Any]]:
    proxy, clock = ToTheProxy(), Clock()
    endpoint = TunnelEndpoint(proxy, "api.example.com", 443, authorization, clock, 10.0)
    outcome: list[Any] = []
    opened = endpoint.connect(Factory.forProtocol(Inner))
    opened.addBoth(outcome.append)
    return proxy, clock, opened, outcome


def error_of(outcome: list[Any]) -> TunnelError:
    assert len(outcome) == 1 and isinstance(outcome[0], Failure), outcome
    assert isinstance(outcome[0].value, TunnelError)
    return outcome[0].value


def test_connect_request_and_an_answer_in_pieces() -> None:
    proxy, _, _, outcome = open_tunnel(b"Basic dTpw")
    assert proxy.transport.value() == (
        b"CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\nProxy-Authorization: Basic dTpw\r\n\r\n"
    )
    for piece in (b"HTTP/1.1 200 Connection est", b"ablished\r\nVia: corp\r\n", b"\r\n\x16\x03\x01first bytes"):
        assert outcome == []
        proxy.protocol.dataReceived(piece)
    (inner,) = outcome
    assert isinstance(inner, Inner)
    assert inner.transport is proxy.transport  # it writes to the socket itself
    assert inner.received == [b"\x16\x03\x01first bytes"]  # what came after the answer
    proxy.protocol.dataReceived(b"more")
    assert inner.received[-1] == b"more"
    proxy.protocol.connectionLost(Failure(ConnectionError("gone")))
    assert inner.lost is not None


@pytest.mark.parametrize(
    ("answer", "transient"),
    [
        (b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n", False),
        (b"HTTP/1.0 403 Forbidden\r\nContent-Length: 0\r\n\r\n", False),
        (b"HTTP/1.1 502 Bad Gateway\r\n\r\n", True),
        (b"HTTP/1.1 503 Service Unavailable\r\n\r\n", True),
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", False),
    ],
)
def test_a_refusal_fails_the_connection_and_closes_it(answer: bytes, transient: bool) -> None:
    proxy, _, _, outcome = open_tunnel()
    proxy.protocol.dataReceived(answer)
    error = error_of(outcome)
    assert str(error) == "the proxy refused the tunnel: " + answer.split(b"\r\n")[0].decode()
    assert error.transient is transient
    assert proxy.transport.disconnecting


def test_an_endless_answer_is_refused() -> None:
    proxy, _, _, outcome = open_tunnel()
    proxy.protocol.dataReceived(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * (MAX_ANSWER_BYTES // 6 + 1))
    assert str(error_of(outcome)) == "the proxy's answer to CONNECT is too long"


def test_a_proxy_that_closes_first_is_transient() -> None:
    proxy, clock, _, outcome = open_tunnel()
    proxy.protocol.connectionLost(Failure(ConnectionError("reset")))
    error = error_of(outcome)
    assert (str(error), error.transient) == ("the proxy closed the connection before opening the tunnel", True)
    assert clock.getDelayedCalls() == []


def test_a_silent_proxy_times_out() -> None:
    proxy, clock, _, outcome = open_tunnel()
    clock.advance(9.9)
    assert outcome == []
    clock.advance(0.2)
    error = error_of(outcome)
    assert (str(error), error.transient) == ("the proxy did not answer CONNECT within 10 s", True)
    assert proxy.transport.disconnecting


def test_an_open_tunnel_has_no_deadline_left() -> None:
    proxy, clock, _, outcome = open_tunnel()
    proxy.protocol.dataReceived(b"HTTP/1.1 200 OK\r\n\r\n")
    assert isinstance(outcome[0], Inner) and clock.getDelayedCalls() == []


def test_cancelling_before_the_answer_aborts_the_connection() -> None:
    proxy, _, opened, outcome = open_tunnel()
    opened.cancel()
    assert proxy.transport.disconnecting
    assert len(outcome) == 1 and isinstance(outcome[0], Failure)

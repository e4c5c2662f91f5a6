"""JSONChannel's read splitting: a large read is parsed exactly as if it came in pieces."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from ccproxy.web.channel import JSONChannel


class _Echo(Resource):
    isLeaf = True

    def render_POST(self, request: Request) -> bytes:  # noqa: N802
        assert request.content is not None
        body = request.content.read()
        return b"%d:%s" % (len(body), body[-8:])


def _request(body: bytes, headers: int = 15) -> bytes:
    lines = [b"POST /v1/messages?beta=true HTTP/1.1", b"Host: 127.0.0.1", b"Content-Length: %d" % len(body)]
    lines += [b"X-Header-%d: %s" % (n, b"v" * 40) for n in range(headers)]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _serve(data: bytes, pieces: int = 1) -> bytes:
    site = Site(_Echo())
    site.protocol = JSONChannel
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    assert isinstance(channel, JSONChannel)
    transport = StringTransport()
    channel.makeConnection(transport)
    step = -(-len(data) // pieces)
    for start in range(0, len(data), step):
        channel.dataReceived(data[start : start + step])
    channel.connectionLost(None)  # type: ignore[arg-type]
    return transport.value()


def test_large_read_with_pipelined_requests_is_answered_like_small_reads() -> None:
    big = b"{" + b"x" * 40_000 + b"END-OF-1"
    small = b"{}" + b"END-OF-2"
    data = _request(big) + _request(small)
    at_once = _serve(data)
    assert b"40009:END-OF-1" in at_once and b"10:END-OF-2" in at_once
    # The same bytes in many small reads give the same answers (dates aside).
    dripped = _serve(data, pieces=97)
    assert at_once.count(b"HTTP/1.1 200") == dripped.count(b"HTTP/1.1 200") == 2
    assert at_once.split(b"\r\n\r\n")[-1] == dripped.split(b"\r\n\r\n")[-1]


def test_local_address_is_asked_once_per_connection() -> None:
    site = Site(_Echo())
    site.protocol = JSONChannel
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport()
    asked = []
    real = transport.getHost
    transport.getHost = lambda: asked.append(1) or real()  # type: ignore[method-assign]
    channel.makeConnection(transport)
    channel.dataReceived(_request(b"{}") * 3)
    assert transport.value().count(b"HTTP/1.1 200") == 3
    assert len(asked) == 1

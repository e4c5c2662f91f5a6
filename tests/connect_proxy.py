"""A scripted HTTP CONNECT proxy for tests (127.0.0.1 only).

It records each CONNECT it gets, then opens the tunnel to C{target} whatever host was
asked for (so tests can name an upstream that does not resolve, as a real proxy would
reach it), or answers with a refusal, or never answers.
"""

from __future__ import annotations

from typing import Any

from attrs import define, field
from twisted.internet import protocol, reactor

__all__ = ["ConnectProxy", "start_connect_proxy"]


@define
class ConnectProxy:
    """What the proxy does and what it saw.

    @ivar target: C{(host, port)} every tunnel goes to.
    @ivar refuse: a status line to answer instead of opening the tunnel.
    @ivar silent: say nothing at all.
    @ivar requests: the head of each CONNECT request, decoded.
    @ivar closed: how many client connections have ended.
    """

    target: tuple[str, int]
    refuse: str | None = None
    silent: bool = False
    requests: list[str] = field(factory=list)
    closed: int = 0


class _Relay(protocol.Protocol):
    """The proxy's side towards the target: passes bytes back to the client."""

    def __init__(self, client: _ProxyClient) -> None:
        self.client = client

    def connectionMade(self) -> None:  # noqa: N802
        self.client.tunnel_open(self)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.client.transport.write(data)

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
        self.client.transport.loseConnection()


class _ProxyClient(protocol.Protocol):
    """The proxy's side towards ccproxy."""

    def __init__(self, script: ConnectProxy) -> None:
        self.script = script
        self.head = b""
        self.relay: _Relay | None = None
        self.early = b""

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if self.relay is not None:
            self.relay.transport.write(data)
            return
        if self.head.endswith(b"\r\n\r\n"):  # tunnel asked for, not open yet
            self.early += data
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            return
        self.early, self.head = self.head[end + 4 :], self.head[: end + 4]
        self.script.requests.append(self.head.decode("latin-1"))
        if self.script.silent:
            return
        if self.script.refuse is not None:
            self.transport.write(self.script.refuse.encode() + b"\r\nContent-Length: 0\r\n\r\n")
            return
        host, port = self.script.target
        protocol.ClientCreator(reactor, _Relay, self).connectTCP(host, port)

    def tunnel_open(self, relay: _Relay) -> None:
        self.relay = relay
        self.transport.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        if self.early:
            relay.transport.write(self.early)

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
        self.script.closed += 1
        if self.relay is not None:
            self.relay.transport.loseConnection()


def start_connect_proxy(script: ConnectProxy) -> Any:
    """Listen on 127.0.0.1:<free port>; return the listening port."""
    factory = protocol.Factory.forProtocol(lambda: _ProxyClient(script))
    factory.noisy = False
    return reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined]

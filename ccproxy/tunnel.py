"""A client endpoint through an HTTP proxy's CONNECT tunnel (the https upstream behind
C{HTTPS_PROXY}).

Twisted's C{ProxyAgent} sends plain-HTTP requests to a proxy, but https needs a tunnel,
which Twisted does not have. L{TunnelEndpoint} is one: it connects to the proxy, asks
C{CONNECT host:port}, and once the proxy answers 2xx connects the protocol it was given
(the TLS layer, with the HTTP client inside) to the same socket. From then on the bytes
pass through L{_Tunnel} untouched; the inner protocol writes to the socket directly, so
the read size, back-pressure and aborts act on the real connection.

The proxy must answer within the connect timeout. A refusal (C{407}, C{403}) fails the
connection with L{TunnelError} naming the proxy's status line, and is not worth a retry;
a proxy that cannot reach the upstream (C{502}, C{503}, C{504}) or closes the connection is.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["TunnelEndpoint", "TunnelError"]

MAX_ANSWER_BYTES = 64 * 1024  # a proxy's CONNECT answer (status line and headers)
_TRANSIENT_STATUSES = (b"502", b"503", b"504")


class TunnelError(Exception):
    """The proxy did not open the tunnel; C{transient} when another try may succeed."""

    def __init__(self, message: str, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@implementer(IStreamClientEndpoint)
class TunnelEndpoint:
    """Connects to C{host:port} through the HTTP proxy that C{proxy} connects to.

    @ivar proxy: the endpoint of the proxy itself.
    @ivar timeout: seconds the proxy has to answer CONNECT (the connect timeout).
    """

    def __init__(
        self,
        proxy: IStreamClientEndpoint,
        host: str,
        port: int,
        authorization: bytes | None,
        clock: IReactorTime,
        timeout: float,
    ) -> None:
        self.proxy = proxy
        self._target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._authorization = authorization
        self.clock = clock
        self.timeout = timeout

    def connect(self, protocolFactory: Any) -> Deferred[Any]:  # noqa: N803 (the interface's name)
        """Fires with the inner protocol once the tunnel is open."""
        factory = _TunnelFactory(self, protocolFactory)
        connected: Deferred[Any] = self.proxy.connect(factory)
        return connected.addCallback(lambda _: factory.opened)

    def request(self) -> bytes:
        """The CONNECT request."""
        target = self._target.encode("ascii")
        lines = [b"CONNECT " + target + b" HTTP/1.1", b"Host: " + target]
        if self._authorization is not None:
            lines.append(b"Proxy-Authorization: " + self._authorization)
        return b"\r\n".join(lines) + b"\r\n\r\n"

    def __repr__(self) -> str:  # the pool names connections after their endpoint
        return f"<TunnelEndpoint {self._target} via {self.proxy!r}>"


class _TunnelFactory(ClientFactory):
    """Builds the L{_Tunnel} around the inner factory's protocol."""

    noisy = False

    def __init__(self, endpoint: TunnelEndpoint, inner: Any) -> None:
        self.endpoint = endpoint
        self.inner = inner
        self.opened: Deferred[Any] = Deferred(self._cancel)
        self._tunnel: _Tunnel | None = None

    def buildProtocol(self, addr: Any) -> _Tunnel:  # noqa: N802
        self._tunnel = _Tunnel(self, self.inner.buildProtocol(addr))
        return self._tunnel

    def _cancel(self, opened: Deferred[Any]) -> None:
        if self._tunnel is not None and self._tunnel.transport is not None:
            self._tunnel.transport.abortConnection()  # type: ignore[attr-defined]


class _Tunnel(Protocol):
    """Asks for the tunnel, then passes every byte to the inner protocol."""

    def __init__(self, factory: _TunnelFactory, inner: Any) -> None:
        self._factory = factory
        self._inner = inner
        self._answer = b""
        self._open = False
        self._deadline: IDelayedCall | None = None

    def connectionMade(self) -> None:  # noqa: N802
        endpoint = self._factory.endpoint
        self.transport.write(endpoint.request())  # type: ignore[union-attr]
        self._deadline = endpoint.clock.callLater(endpoint.timeout, self._no_answer)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if self._open:
            self._inner.dataReceived(data)
            return
        self._answer += data
        end = self._answer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._answer) > MAX_ANSWER_BYTES:
                self._fail(TunnelError("the proxy's answer to CONNECT is too long", transient=False))
            return
        status_line = self._answer.split(b"\r\n", 1)[0]
        rest, self._answer = self._answer[end + 4 :], b""
        words = status_line.split(b" ", 2)
        if len(words) < 2 or not words[0].startswith(b"HTTP/") or not words[1].startswith(b"2"):
            said = status_line[:200].decode("latin-1")
            transient = len(words) > 1 and words[1] in _TRANSIENT_STATUSES
            self._fail(TunnelError(f"the proxy refused the tunnel: {said}", transient))
            return
        self._cancel_deadline()
        self._open = True
        self._inner.makeConnection(self.transport)
        self._factory.opened.callback(self._inner)
        if rest:
            self._inner.dataReceived(rest)

    def connectionLost(self, reason: Failure | None = None) -> None:  # noqa: N802
        self._cancel_deadline()
        if self._open:
            self._inner.connectionLost(reason)
        elif not self._factory.opened.called:
            self._factory.opened.errback(
                TunnelError("the proxy closed the connection before opening the tunnel", transient=True)
            )

    def _no_answer(self) -> None:
        self._deadline = None
        timeout = self._factory.endpoint.timeout
        self._fail(TunnelError(f"the proxy did not answer CONNECT within {timeout:g} s", transient=True))

    def _fail(self, error: TunnelError) -> None:
        self._cancel_deadline()
        if not self._factory.opened.called:
            self._factory.opened.errback(error)
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def _cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

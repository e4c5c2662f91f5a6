"""The upstream HTTP client: one pooled agent per process, streaming bodies.

The pool is created when the service starts (never before twistd forks) and its cached
connections expire before typical provider keep-alive limits, so a reused connection is
rarely one the provider already closed.

Requests go to C{Agent.request} directly rather than through treq's C{HTTPClient}: on
every call treq parses the URL with hyperlink (IDNA included), merges a cookie jar,
wraps the agent in cookie, redirect and gzip layers and feeds the body through a
cooperator task (one more reactor turn). Dropping it cut the CPU of a proxied 48 KB
request in C{bench/} from 3.3 to about 2.3 ms, and none of it is wanted: no cookies, no
redirects, and a compressed SSE stream would only be buffered.
TWISTED.md (e) prescribes exactly this for the hot path. treq stays the dependency that
brings Twisted's TLS extras, and the client the tests drive ccproxy with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import define, field
from hyperlink import EncodedURL
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IReactorTime, IStreamClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import URI, Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool
from twisted.web.error import SchemeNotSupported
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IAgentEndpointFactory, IBodyProducer, IResponse
from zope.interface import implementer

from ccproxy.config import Settings
from ccproxy.proxies import NoProxy, Proxy, proxy_for
from ccproxy.tunnel import TunnelEndpoint

__all__ = ["Upstream", "CACHED_CONNECTION_SECONDS", "BytesBody", "HandshakeTimeout"]

_log = Logger()
CACHED_CONNECTION_SECONDS = 50
MAX_IDLE_PER_HOST = 64  # idle connections kept per upstream; above the usual concurrency
READ_SIZE = 16384  # bytes an upstream socket gives per reactor turn (see L{SmallReads})


@implementer(IBodyProducer)
class BytesBody:
    """A request body already in memory, written in one piece as soon as it is asked for.

    Twisted's own C{FileBodyProducer} would read it back from a file object in a
    cooperator task, one reactor turn later.
    """

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.length = len(body)

    def startProducing(self, consumer: Any) -> Deferred[None]:  # noqa: N802
        # Let go of the body once written: the request object (and this producer) live
        # as long as the response, which for a stream can be minutes.
        body, self._body = self._body, b""
        consumer.write(body)
        return succeed(None)

    def pauseProducing(self) -> None:  # noqa: N802
        """Nothing left to pause: the body was written at once."""

    def resumeProducing(self) -> None:  # noqa: N802
        """Nothing to resume."""

    def stopProducing(self) -> None:  # noqa: N802
        """Nothing to stop."""


@implementer(IStreamClientEndpoint)
class QuietEndpoint:
    """An endpoint that connects the pool's factory with C{noisy} off.

    Twisted's C{Factory} logs "Starting factory" and "Stopping factory" whenever it is
    started or stopped, and the connection pool makes a new factory for every upstream
    connection: two log lines per connection, between the one line per request.

    @ivar endpoint: the endpoint that connects.
    """

    def __init__(self, endpoint: IStreamClientEndpoint) -> None:
        self.endpoint = endpoint

    def connect(self, protocolFactory: Any) -> Deferred[Any]:  # noqa: N803 (the interface's name)
        protocolFactory.noisy = False
        return self.endpoint.connect(protocolFactory)

    def __repr__(self) -> str:  # the pool names its connections after the endpoint
        return repr(self.endpoint)


@implementer(IStreamClientEndpoint)
class SmallReads:
    """A TCP endpoint whose connections read at most C{size} bytes per reactor turn.

    Twisted reads up to 64 KB from a socket at once, and its HTTP client hands every
    chunk of that read to the relay before the reactor can send the client anything. In
    a burst (a provider flushing what it held back, a fast local model, a stalled network
    catching up) 64 KB is some 300 to 500 SSE chunks: the client's first event waited
    until all of them were parsed. With 16 KB reads the client gets the first events a
    quarter of the way in (500-chunk burst in C{bench/}: first event 5–6 → 3.2–3.6 ms),
    while the relay still converts its usual share of events per reactor turn
    (L{ccproxy.web.streaming.EVENTS_PER_TURN}). A paced stream, a chunk or two per read,
    is unchanged. 8 KB reads were a little quicker to the first event but cost CPU
    (about 1 ms more per 500-chunk burst: more reads, more pauses of the socket).

    The limit is the TCP transport's C{bufferSize}, which C{Connection.doRead} passes to
    C{recv}; set on the connection at the TCP level, so under TLS it bounds the
    ciphertext read per turn. (The transport also uses it as the write buffer size above
    which a registered producer is paused: the request body is written at once, and its
    producer has nothing to pause.)
    """

    def __init__(self, endpoint: IStreamClientEndpoint, size: int = READ_SIZE) -> None:
        self.endpoint = endpoint
        self.size = size

    def connect(self, protocolFactory: Any) -> Deferred[Any]:  # noqa: N803 (the interface's name)
        return self.endpoint.connect(protocolFactory).addCallback(self._limit)

    def _limit(self, protocol: Any) -> Any:
        protocol.transport.bufferSize = self.size
        return protocol

    def __repr__(self) -> str:
        return repr(self.endpoint)


class HandshakeTimeout(Exception):
    """The upstream's TLS handshake did not finish within C{CONNECT_TIMEOUT}."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"the TLS handshake did not finish within {timeout:g} s (CONNECT_TIMEOUT)")


@implementer(IOpenSSLClientConnectionCreator)
class HandshakeDeadline:
    """TLS client connections whose handshake must finish within C{timeout} seconds.

    C{CONNECT_TIMEOUT} bounds the TCP connection, and Twisted puts no limit on the TLS
    handshake that follows. A server that accepts the connection and never answers the
    client's hello (a middlebox, or a port that does not speak TLS and waits for a line)
    would hold the request until C{UPSTREAM_TIMEOUT}, ten minutes by default. The same
    C{CONNECT_TIMEOUT} now covers the handshake: a connection still without the server's
    certificate at the deadline is aborted with L{HandshakeTimeout}, and the request fails
    as a connection failure does, retried like one.

    @ivar creator: the connection creator that does the work (hostname checks included).
    """

    def __init__(self, creator: IOpenSSLClientConnectionCreator, clock: IReactorTime, timeout: float) -> None:
        self.creator = creator
        self._clock = clock
        self._timeout = timeout

    def clientConnectionForTLS(self, tlsProtocol: Any) -> Any:  # noqa: N802, N803 (the interface's names)
        """The connection, made as the TCP connection is: the deadline starts now."""
        connection = self.creator.clientConnectionForTLS(tlsProtocol)
        self._clock.callLater(self._timeout, self._expire, tlsProtocol)
        return connection

    def _expire(self, tls: Any) -> None:
        transport = tls.transport
        if not tls.connected or transport is None or not transport.connected or tls.getPeerCertificate() is not None:
            return  # closed already, or the handshake is done
        _log.info(
            "TLS handshake with {peer} did not finish within {timeout:g} s; closing the connection",
            peer=transport.getPeer(),
            timeout=self._timeout,
        )
        # Twisted's way to abort during connection set-up with a reason of one's own (its
        # hostname check uses it); the request fails with this reason, not a lost connection.
        tls.failVerification(Failure(HandshakeTimeout(self._timeout)))


@implementer(IAgentEndpointFactory)
class ReusedEndpoints:
    """One client endpoint per upstream origin, built on first use and kept.

    C{Agent} asks for an endpoint on every request, and the standard factory builds a new
    C{HostnameEndpoint} (plus its TLS wrapper) each time, although the pool uses it only
    when it must open a new connection. Endpoints can connect any number of times.

    An IP address (a local Ollama, vLLM or LM Studio at 127.0.0.1 or on the LAN) gets a
    plain TCP endpoint: C{HostnameEndpoint} would resolve even an address with
    C{getaddrinfo} in a thread for every new connection. An https origin that C{no_proxy}
    does not exempt goes through C{proxy}'s CONNECT tunnel (L{ccproxy.proxies}).
    """

    def __init__(
        self, reactor: Any, connect_timeout: float, proxy: Proxy | None = None, no_proxy: NoProxy | None = None
    ) -> None:
        self._reactor = reactor
        self._connect_timeout = connect_timeout
        self._proxy = proxy
        self._no_proxy = no_proxy or NoProxy()
        self._tls_policy = BrowserLikePolicyForHTTPS()
        self._endpoints: dict[tuple[bytes, bytes, int], QuietEndpoint] = {}

    def endpointForURI(self, uri: URI) -> QuietEndpoint:  # noqa: N802
        key = (uri.scheme, uri.host, uri.port)
        found = self._endpoints.get(key)
        if found is None:
            if uri.scheme not in (b"http", b"https"):
                raise SchemeNotSupported(f"unsupported scheme: {uri.scheme!r}")
            endpoint: IStreamClientEndpoint = self.connection_to(uri.scheme, uri.host.decode("ascii"), uri.port)
            if uri.scheme == b"https":
                creator = self._tls_policy.creatorForNetloc(uri.host, uri.port)
                endpoint = wrapClientTLS(HandshakeDeadline(creator, self._reactor, self._connect_timeout), endpoint)
            found = self._endpoints[key] = QuietEndpoint(endpoint)
        return found

    def connection_to(self, scheme: bytes, host: str, port: int) -> SmallReads:
        """The byte stream to C{host}: direct, or an https origin through the proxy's tunnel."""
        proxy = proxy_for(scheme.decode("ascii"), host, self._proxy, self._no_proxy)
        if proxy is not None:
            tcp = self._tcp(proxy.host, proxy.port)
            timeout = self._connect_timeout
            return SmallReads(TunnelEndpoint(tcp, host, port, proxy.authorization, self._reactor, timeout))
        return SmallReads(self._tcp(host, port))

    def _tcp(self, host: str, port: int) -> IStreamClientEndpoint:
        timeout = self._connect_timeout
        if isIPAddress(host):
            return TCP4ClientEndpoint(self._reactor, host, port, timeout=timeout)
        if isIPv6Address(host):
            return TCP6ClientEndpoint(self._reactor, host, port, timeout=timeout)
        return HostnameEndpoint(self._reactor, host, port, timeout=timeout)


def request_target(url: str) -> bytes:
    """C{url} as the bytes C{Agent.request} wants: IDNA host, percent-encoded path."""
    return EncodedURL.from_text(url).to_uri().to_text().encode("ascii")


@define(eq=False)
class Upstream:
    """Posts Chat Completions requests to the configured provider.

    @ivar agent: an injected agent (tests may pass a scripted one); when C{None}, L{start}
        builds a pooled one.
    """

    settings: Settings
    reactor: Any
    agent: IAgent | None = None
    _pool: HTTPConnectionPool | None = field(default=None, init=False)
    _url: bytes | None = field(init=False)
    _fixed_headers: dict[bytes, list[bytes]] = field(init=False)

    def __attrs_post_init__(self) -> None:
        try:
            self._url = request_target(self.settings.chat_completions_url)
        except ValueError:  # reported per request, as a 502 naming the upstream
            self._url = None
        headers = {
            b"Content-Type": [b"application/json"],
            b"Accept": [b"text/event-stream, application/json"],
            b"User-Agent": [b"ccproxy"],
        }
        if self.settings.openai_api_key:
            headers[b"Authorization"] = [f"Bearer {self.settings.openai_api_key}".encode()]
        self._fixed_headers = headers

    def start(self) -> None:
        """Create the connection pool and agent (from C{startService})."""
        if self.agent is not None:
            return
        pool = HTTPConnectionPool(self.reactor, persistent=True)
        pool.maxPersistentPerHost = MAX_IDLE_PER_HOST
        pool.cachedConnectionTimeout = CACHED_CONNECTION_SECONDS
        pool.retryAutomatically = False
        self._pool = pool
        settings = self.settings
        endpoints = ReusedEndpoints(self.reactor, settings.connect_timeout, settings.https_proxy, settings.no_proxy)
        self.agent = Agent.usingEndpointFactory(self.reactor, endpoints, pool=pool)

    @property
    def pool(self) -> HTTPConnectionPool | None:
        """The shared connection pool (C{None} before L{start} or with an injected agent)."""
        return self._pool

    def stop(self) -> Deferred[None]:
        """Close idle pooled connections (from C{stopService})."""
        pool, self._pool = self._pool, None
        if pool is None:
            return succeed(None)
        self.agent = None
        result: Deferred[None] = pool.closeCachedConnections()
        return result

    def headers(self, extra: Mapping[str, str]) -> Headers:
        """Headers for an upstream call: JSON in, SSE out, the provider key, extras."""
        headers = Headers(self._fixed_headers)
        for name, value in extra.items():
            headers.setRawHeaders(name, [value])  # Twisted encodes str values as UTF-8
        return headers

    def post_chat(self, body: bytes, extra_headers: Mapping[str, str]) -> Deferred[IResponse]:
        """POST C{body} to C{/chat/completions}; fires with the response once headers arrive.

        The caller reads the body as it streams (C{deliverBody}). Cancelling the Deferred
        before the headers aborts the connection; the caller owns the time limits.
        Redirects are not followed: an API answers, and a redirect would drop the POST
        body anyway.
        """
        if self.agent is None:
            raise RuntimeError("Upstream.start() has not been called")
        if self._url is None:
            raise ValueError(f"OPENAI_BASE_URL cannot be encoded as a URL: {self.settings.openai_base_url!r}")
        result: Deferred[IResponse] = self.agent.request(b"POST", self._url, self.headers(extra_headers), BytesBody(body))
        return result

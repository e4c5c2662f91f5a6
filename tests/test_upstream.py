"""The upstream client's own pieces: request target, body producer, headers."""

from __future__ import annotations

import pytest
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web.client import URI
from twisted.web.error import SchemeNotSupported

from ccproxy.config import Settings
from ccproxy.proxies import NoProxy, Proxy
from ccproxy.tunnel import TunnelEndpoint
from ccproxy.upstream import READ_SIZE, BytesBody, QuietEndpoint, ReusedEndpoints, SmallReads, Upstream, request_target


def test_request_target_encodes_idna_host_and_path() -> None:
    assert request_target("https://api.example.com/v1/chat/completions") == b"https://api.example.com/v1/chat/completions"
    assert request_target("http://bücher.example/ä b/chat/completions") == (
        b"http://xn--bcher-kva.example/%C3%A4%20b/chat/completions"
    )


def test_bytes_body_is_written_at_once_with_its_length() -> None:
    body = BytesBody(b'{"model":"x"}')
    transport = StringTransport()
    done = body.startProducing(transport)
    assert body.length == 13
    assert transport.value() == b'{"model":"x"}'
    assert done.called
    # The producer lives as long as the response (minutes for a stream): it must not keep the body.
    assert body._body == b""


def test_headers_carry_the_key_and_utf8_extras() -> None:
    upstream = Upstream(Settings(openai_api_key="sk-test"), Clock())
    headers = upstream.headers({"X-Title": "Café ☕"})
    assert headers.getRawHeaders(b"authorization") == [b"Bearer sk-test"]
    assert headers.getRawHeaders(b"x-title") == ["Café ☕".encode()]
    assert headers.getRawHeaders(b"accept") == [b"text/event-stream, application/json"]
    # Each call gets its own headers: extras never leak into the next request.
    assert upstream.headers({}).getRawHeaders(b"x-title") is None


def test_endpoints_are_built_once_per_origin() -> None:
    from twisted.internet import reactor  # endpoints resolve names through a real reactor; nothing connects here

    endpoints = ReusedEndpoints(reactor, 5.0)

    def endpoint_for(url: bytes) -> object:
        quiet = endpoints.endpointForURI(URI.fromBytes(url))
        assert isinstance(quiet, QuietEndpoint)
        return quiet.endpoint

    def tcp_for(url: bytes) -> object:
        """The TCP endpoint of a plain http origin, under the read-size limit."""
        small = endpoint_for(url)
        assert isinstance(small, SmallReads) and small.size == READ_SIZE
        return small.endpoint

    first = endpoints.endpointForURI(URI.fromBytes(b"http://127.0.0.1:8000/v1/chat/completions"))
    again = endpoints.endpointForURI(URI.fromBytes(b"http://127.0.0.1:8000/other"))
    other = endpoints.endpointForURI(URI.fromBytes(b"http://127.0.0.1:8001/v1/chat/completions"))
    assert first is again
    assert other is not first
    assert isinstance(tcp_for(b"http://127.0.0.1:8000/v1"), TCP4ClientEndpoint)  # an address: no name resolution
    assert isinstance(tcp_for(b"http://[::1]:8000/v1"), TCP6ClientEndpoint)
    assert isinstance(tcp_for(b"http://localhost:8000/v1"), HostnameEndpoint)
    # https: TLS wraps the limited TCP endpoint (the read size over TLS is tested on a real socket)
    assert not isinstance(endpoint_for(b"https://127.0.0.1:8000/v1"), SmallReads)
    assert not isinstance(endpoint_for(b"https://api.example.com/v1"), SmallReads)
    with pytest.raises(SchemeNotSupported):
        endpoints.endpointForURI(URI.fromBytes(b"ftp://127.0.0.1/x"))


def test_https_origins_go_through_the_proxy_unless_exempt() -> None:
    """HTTPS_PROXY carries https origins only; NO_PROXY names and loopback go direct."""
    from twisted.internet import reactor

    proxy = Proxy.parse("http://proxy.corp:3128")
    endpoints = ReusedEndpoints(reactor, 5.0, proxy, NoProxy.parse(".internal.corp,10.0.0.0/8"))

    def stream_to(url: bytes) -> object:
        """What carries the bytes (under TLS for https)."""
        uri = URI.fromBytes(url)
        return endpoints.connection_to(uri.scheme, uri.host.decode(), uri.port).endpoint

    tunnel = stream_to(b"https://api.openai.com/v1")
    assert isinstance(tunnel, TunnelEndpoint) and "api.openai.com:443" in repr(tunnel) and "proxy.corp" in repr(tunnel)
    for direct in (b"https://llm.internal.corp/v1", b"https://10.1.2.3/v1", b"https://127.0.0.1:8443/v1", b"http://api.openai.com/v1"):
        assert not isinstance(stream_to(direct), TunnelEndpoint), direct

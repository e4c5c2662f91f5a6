"""An https upstream behind HTTPS_PROXY: ccproxy tunnels through the proxy with CONNECT.

The upstream is named C{api.upstream.test}, a name that does not resolve: only the proxy
(L{tests.connect_proxy}) knows where it is, as in a network that lets traffic out only
through its proxy. The upstream's certificate is for that name.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import task
from twisted.internet.protocol import ClientCreator

from ccproxy.grammar import check_events
from ccproxy.proxies import Proxy
from tests.connect_proxy import ConnectProxy, start_connect_proxy
from tests.fake_upstream import start_fake_upstream, text_reply
from tests.tls import Authority, make_authority
from tests.web.test_integration import RawClient, body, post, sse_events

NAME = "api.upstream.test"


@pytest.fixture
def authority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Authority:
    """A CA for 127.0.0.1 and C{NAME}, trusted through SSL_CERT_FILE."""
    made = make_authority(tmp_path, names=(NAME,))
    monkeypatch.setenv("SSL_CERT_FILE", str(made.ca_file))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    return made


@pytest.fixture
def tunnel(reactor: Any, authority: Authority) -> Any:
    """The TLS upstream and a proxy that tunnels every CONNECT to it; stopped after the test."""
    upstream, upstream_port = start_fake_upstream([text_reply("through the proxy"), text_reply("again")], authority)
    script = ConnectProxy(("127.0.0.1", upstream_port.getHost().port))
    proxy_port = start_connect_proxy(script)
    yield upstream, script, proxy_port.getHost().port
    pytest_twisted.blockon(upstream_port.stopListening())
    pytest_twisted.blockon(proxy_port.stopListening())


def start(harness: Any, proxy_port: int, **settings: Any) -> str:
    proxy = Proxy.parse(f"http://team%40corp:s%3Acret@127.0.0.1:{proxy_port}")
    return harness.start_proxy(f"https://{NAME}/v1", https_proxy=proxy, **settings)  # type: ignore[no-any-return]


@pytest_twisted.ensureDeferred
async def test_an_https_upstream_is_reached_through_the_proxys_tunnel(harness: Any, tunnel: Any) -> None:
    """Stream and JSON answers over TLS inside the tunnel; the proxy gets the credentials
    of its URL; the pooled connection (one tunnel) serves both requests."""
    upstream, script, proxy_port = tunnel
    url = start(harness, proxy_port)
    response, raw = await post(url + "/v1/messages", body(stream=True))
    assert response.code == 200
    events = sse_events(raw)
    check_events(events)
    assert "".join(d["delta"].get("text", "") for n, d in events if n == "content_block_delta") == "through the proxy"
    response, raw = await post(url + "/v1/messages", body())
    assert (response.code, json.loads(raw)["content"][0]["text"]) == (200, "again")
    assert len(script.requests) == 1
    head = script.requests[0].split("\r\n")
    assert head[0] == f"CONNECT {NAME}:443 HTTP/1.1"
    assert f"Host: {NAME}:443" in head
    assert "Proxy-Authorization: Basic " + base64.b64encode(b"team@corp:s:cret").decode() in head
    assert len(upstream.received) == 2


@pytest_twisted.ensureDeferred
async def test_a_refused_tunnel_is_a_502_that_quotes_the_proxy(
    harness: Any, tunnel: Any, log_events: list[dict[str, Any]]
) -> None:
    """407 (or 403): the client learns what the proxy said; nothing is retried."""
    upstream, script, proxy_port = tunnel
    script.refuse = "HTTP/1.1 407 Proxy Authentication Required"
    url = start(harness, proxy_port)
    response, raw = await post(url + "/v1/messages", body())
    assert response.code == 502
    message = json.loads(raw)["error"]["message"]
    assert message == f"cannot reach upstream {NAME}: the proxy refused the tunnel: HTTP/1.1 407 Proxy Authentication Required"
    assert len(script.requests) == 1 and upstream.received == []
    assert not any("retrying" in str(event.get("log_format", "")) for event in log_events)


@pytest_twisted.ensureDeferred
async def test_a_proxy_that_does_not_answer_is_cut_at_the_connect_timeout(harness: Any, tunnel: Any, reactor: Any) -> None:
    upstream, script, proxy_port = tunnel
    script.silent = True
    url = start(harness, proxy_port, connect_timeout=0.2, upstream_timeout=30, upstream_retries=0)
    started = reactor.seconds()
    response, raw = await post(url + "/v1/messages", body())
    assert response.code == 502
    assert json.loads(raw)["error"]["message"].endswith(": the proxy did not answer CONNECT within 0.2 s")
    assert reactor.seconds() - started < 5


@pytest_twisted.ensureDeferred
async def test_a_client_that_leaves_while_the_proxy_is_silent_closes_the_proxy_connection(
    harness: Any, tunnel: Any, reactor: Any
) -> None:
    """Esc while the tunnel is still being asked for: the proxy connection closes at once."""
    upstream, script, proxy_port = tunnel
    script.silent = True
    url = start(harness, proxy_port, ping_interval=0.05, connect_timeout=30)
    client = await ClientCreator(reactor, RawClient).connectTCP("127.0.0.1", int(url.rsplit(":", 1)[1]))
    payload = json.dumps(body(stream=True)).encode()
    client.transport.write(
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
    )
    while b"event: ping" not in client.received:  # started early: message_start, then pings
        await task.deferLater(reactor, 0.01, lambda: None)
    assert len(script.requests) == 1 and script.closed == 0
    started = reactor.seconds()
    client.transport.loseConnection()
    while not script.closed and reactor.seconds() - started < 2:
        await task.deferLater(reactor, 0.005, lambda: None)
    assert script.closed == 1
    assert reactor.seconds() - started < 0.1

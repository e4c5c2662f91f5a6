"""The https upstream path, as every real provider uses it, and the upstream's read size.

The scripted upstream serves TLS with a certificate from a CA made for the test run
(L{tests.tls}); ccproxy trusts that CA through C{SSL_CERT_FILE}, the way an operator
points it at a private one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import protocol, task
from twisted.internet.defer import Deferred
from twisted.logger import formatEvent
from twisted.web.client import URI

from ccproxy.grammar import check_events
from ccproxy.upstream import READ_SIZE, ReusedEndpoints
from tests.fake_upstream import start_fake_upstream, text_reply
from tests.tls import Authority, make_authority
from tests.web.test_integration import body, post, sse_events


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return make_authority(tmp_path)


@pytest.fixture
def trusted(authority: Authority, monkeypatch: pytest.MonkeyPatch) -> Authority:
    """The test CA, trusted the way an operator trusts a private CA."""
    monkeypatch.setenv("SSL_CERT_FILE", str(authority.ca_file))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    return authority


@pytest_twisted.ensureDeferred
async def test_https_upstream_streams_and_answers_json(harness: Any, trusted: Authority) -> None:
    """Both client modes work over a verified TLS connection, and the pool reuses it."""
    url = harness.start([text_reply("over tls"), text_reply("again")], tls=trusted)
    response, raw = await post(url + "/v1/messages", body(stream=True))
    assert response.code == 200
    events = sse_events(raw)
    check_events(events)
    text = "".join(data["delta"].get("text", "") for name, data in events if name == "content_block_delta")
    assert text == "over tls"
    response, raw = await post(url + "/v1/messages", body())
    assert response.code == 200
    assert json.loads(raw)["content"][0]["text"] == "again"
    first, second = harness.upstream.received
    assert first.peer_port == second.peer_port != 0


@pytest_twisted.ensureDeferred
async def test_untrusted_upstream_certificate_is_a_502_that_says_so(
    harness: Any,
    authority: Authority,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    log_events: list[dict[str, Any]],
) -> None:
    """A certificate from a CA ccproxy does not trust fails the request before anything is
    sent upstream, with an error that names the cause."""
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv("SSL_CERT_FILE", str(make_authority(other).ca_file))
    url = harness.start([text_reply("never")], tls=authority)
    response, raw = await post(url + "/v1/messages", body())
    assert response.code == 502
    error = json.loads(raw)
    assert error["type"] == "error" and error["error"]["type"] == "api_error"
    assert "TLS handshake failed: certificate verify failed" in error["error"]["message"]
    assert "SSL_CERT_FILE" in error["error"]["message"]
    assert harness.upstream.received == []
    assert not retried(log_events)


async def ask_once(harness: Any, port: Any, upstream_url: str, **settings: Any) -> tuple[Any, bytes]:
    """One JSON request through a proxy in front of C{upstream_url} (its C{{port}} filled in
    from the listening C{port}, which stops listening afterwards)."""
    try:
        url = harness.start_proxy(upstream_url.format(port=port.getHost().port), **settings)
        return await post(url + "/v1/messages", body())  # type: ignore[no-any-return]
    finally:
        await port.stopListening()


def retried(log_events: list[dict[str, Any]]) -> bool:
    return any("retrying" in str(event.get("log_format", "")) for event in log_events)


@pytest_twisted.ensureDeferred
async def test_certificate_for_another_host_is_a_502_that_says_so(
    harness: Any, trusted: Authority, log_events: list[dict[str, Any]]
) -> None:
    """The certificate is for 127.0.0.1; ccproxy asked for localhost."""
    upstream, port = start_fake_upstream([text_reply("never")], trusted)
    response, raw = await ask_once(harness, port, "https://localhost:{port}/v1")
    assert response.code == 502
    assert json.loads(raw)["error"]["message"].endswith("its TLS certificate is not valid for this host name")
    assert upstream.received == []
    assert not retried(log_events)


class _PlainHTTP(protocol.Protocol):
    """A plain HTTP server's answer to a TLS hello (Go's net/http, as in Ollama, says this)."""

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.transport.write(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
        self.transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_https_url_of_a_plain_http_server_is_a_502_that_says_so(
    harness: Any, reactor: Any, log_events: list[dict[str, Any]]
) -> None:
    """A local server that speaks plain HTTP, configured as https://: the handshake fails
    at once, with the likely fix."""
    port = reactor.listenTCP(0, protocol.Factory.forProtocol(_PlainHTTP), interface="127.0.0.1")
    response, raw = await ask_once(harness, port, "https://127.0.0.1:{port}/v1")
    assert response.code == 502
    message = json.loads(raw)["error"]["message"]
    assert message.startswith("cannot reach upstream 127.0.0.1:")
    assert "TLS handshake failed" in message and "is the URL http:// rather than https://?" in message
    assert not retried(log_events)


@pytest_twisted.ensureDeferred
async def test_a_handshake_that_never_finishes_is_cut_at_the_connect_timeout(
    harness: Any, reactor: Any, log_events: list[dict[str, Any]]
) -> None:
    """A server that accepts the connection and never answers the TLS hello: the request
    fails after CONNECT_TIMEOUT, not after UPSTREAM_TIMEOUT, and says why."""
    port = reactor.listenTCP(0, protocol.Factory.forProtocol(protocol.Protocol), interface="127.0.0.1")
    started = reactor.seconds()
    response, raw = await ask_once(
        harness, port, "https://127.0.0.1:{port}/v1", connect_timeout=0.2, upstream_timeout=30, upstream_retries=0
    )
    took = reactor.seconds() - started
    assert response.code == 502
    message = json.loads(raw)["error"]["message"]
    assert message.endswith(": the TLS handshake did not finish within 0.2 s (CONNECT_TIMEOUT)")
    assert 0.2 <= took < 5
    assert any("did not finish within 0.2 s" in formatEvent(event) for event in log_events)


@pytest_twisted.ensureDeferred
async def test_the_handshake_deadline_leaves_a_finished_handshake_alone(
    harness: Any, reactor: Any, trusted: Authority
) -> None:
    """After the deadline, a connection whose handshake finished keeps serving (it is pooled)."""
    url = harness.start([text_reply("one"), text_reply("two")], tls=trusted, connect_timeout=0.5)
    response, _ = await post(url + "/v1/messages", body())
    assert response.code == 200
    await task.deferLater(reactor, 0.7, lambda: None)  # past the first connection's deadline
    response, raw = await post(url + "/v1/messages", body())
    assert (response.code, json.loads(raw)["content"][0]["text"]) == (200, "two")
    first, second = harness.upstream.received
    assert first.peer_port == second.peer_port


BURST = 256 * 1024


class _Burst(protocol.Protocol):
    """Writes L{BURST} bytes at once, as a provider flushing what it held back."""

    def connectionMade(self) -> None:  # noqa: N802
        self.transport.write(b"x" * BURST)


class _BytesPerTurn(protocol.Protocol):
    """Adds up what arrives in each reactor turn; fires C{done} with the sums."""

    def __init__(self, reactor: Any, done: Deferred[list[int]]) -> None:
        self.reactor = reactor
        self.done = done
        self.turns: list[int] = []
        self.turn_open = False

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if not self.turn_open:
            self.turn_open = True
            self.turns.append(0)
            self.reactor.callLater(0, setattr, self, "turn_open", False)
        self.turns[-1] += len(data)
        if sum(self.turns) >= BURST and not self.done.called:
            self.done.callback(self.turns)
            self.transport.loseConnection()


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest_twisted.ensureDeferred
async def test_upstream_connections_take_a_burst_a_little_per_reactor_turn(
    reactor: Any, trusted: Authority, scheme: str
) -> None:
    """An upstream connection reads at most READ_SIZE bytes (under TLS: of ciphertext) per
    reactor turn, so the client gets the first events of a burst before the rest is parsed.
    Twisted's own read size is 64 KB."""
    server = protocol.Factory.forProtocol(_Burst)
    if scheme == "https":
        port = reactor.listenSSL(0, server, trusted, interface="127.0.0.1")
    else:
        port = reactor.listenTCP(0, server, interface="127.0.0.1")
    try:
        endpoint = ReusedEndpoints(reactor, 5.0).endpointForURI(URI.fromBytes(f"{scheme}://127.0.0.1:{port.getHost().port}/".encode()))
        done: Deferred[list[int]] = Deferred()
        await endpoint.connect(protocol.Factory.forProtocol(lambda: _BytesPerTurn(reactor, done)))
        turns = await done
    finally:
        await port.stopListening()
    assert sum(turns) == BURST
    assert max(turns) <= READ_SIZE < 65536
    assert len(turns) >= BURST // READ_SIZE

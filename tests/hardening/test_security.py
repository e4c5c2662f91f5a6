"""Security defaults: the client key before the body, no upstream override, no leaks."""

from __future__ import annotations

import json
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet import defer
from twisted.internet.protocol import ClientCreator, Protocol
from twisted.logger import formatEvent
from twisted.web.client import HTTPConnectionPool

from tests.fake_upstream import Reply, text_reply
from tests.web.test_integration import body, post

CLIENT_KEY = "ccproxy-client-key-7d41"
UPSTREAM_KEY = "sk-upstream-key-93be20"




class Answer(Protocol):
    """Collects whatever the server sends until it closes."""

    def __init__(self) -> None:
        self.data = b""
        self.closed: defer.Deferred[bytes] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.data += data

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
        self.closed.callback(self.data)


@pytest_twisted.ensureDeferred
async def test_wrong_key_is_refused_before_the_body_is_read(harness: Any, reactor: Any) -> None:
    """A request announcing 1 GB with a wrong key gets 401 at once; no body is awaited."""
    url = harness.start([], anthropic_api_key=CLIENT_KEY)
    port = int(url.rsplit(":", 1)[1])
    client = await ClientCreator(reactor, Answer).connectTCP("127.0.0.1", port)
    client.transport.write(
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"x-api-key: not-the-key\r\nContent-Length: 1000000000\r\n\r\n{"
    )
    raw = await client.closed.addTimeout(5, reactor)
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401")
    assert json.loads(payload)["error"]["type"] == "authentication_error"
    assert harness.upstream.received == []


@pytest_twisted.ensureDeferred
async def test_key_accepted_as_x_api_key_or_bearer_and_probes_stay_open(harness: Any, reactor: Any) -> None:
    """Either header carries the key; /health and /api/hello need none."""
    url = harness.start([text_reply("a"), text_reply("b")], anthropic_api_key=CLIENT_KEY)
    for headers in ({"x-api-key": CLIENT_KEY}, {"authorization": f"Bearer {CLIENT_KEY}"}):
        response, _ = await post(url + "/v1/messages", body(), headers)
        assert response.code == 200
    missing, _ = await post(url + "/v1/messages", body())
    assert missing.code == 401
    pool = HTTPConnectionPool(reactor, persistent=False)
    for path in ("/health", "/api/hello"):
        assert (await treq.get(url + path, pool=pool)).code == 200


@pytest_twisted.ensureDeferred
async def test_client_cannot_choose_the_upstream_or_its_key(harness: Any) -> None:
    """Headers, query and body fields naming an upstream or a key change nothing upstream;
    client header values never reach the upstream's headers."""
    url = harness.start([text_reply("ok")], openai_api_key=UPSTREAM_KEY)
    hostile = {
        "authorization": "Bearer client-token-aaaa",
        "x-api-key": "client-key-bbbb",
        "x-forwarded-host": "evil.example",
        "openai-base-url": "http://evil.example/v1",
        "x-claude-code-session-id": "s1\tX-Injected: yes",
    }
    payload = body(
        model="gpt-5\r\nX-Injected: yes",
        base_url="http://evil.example/v1",
        api_key="sk-client-cccc",
        extra_headers={"X-Injected": "yes"},
    )
    response, _ = await post(url + "/v1/messages?base_url=http://evil.example&api_key=x", payload, hostile)
    assert response.code == 200
    [sent] = harness.upstream.received
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert "x-injected" not in sent.headers and "x-api-key" not in sent.headers
    shown = json.dumps(sent.headers)
    for value in ("client-token-aaaa", "client-key-bbbb", "evil.example", "sk-client-cccc"):
        assert value not in shown and value not in json.dumps(sent.body)


@pytest.mark.parametrize("mode", ["default", "simple", "debug"])
@pytest_twisted.ensureDeferred
async def test_no_secret_anywhere_in_any_log_mode(
    harness: Any, reactor: Any, log_events: list[dict[str, Any]], mode: str
) -> None:
    """With both keys configured, no key shows in logs, /health, / or error bodies, even
    when the upstream echoes its key back in an error."""
    echo = Reply(status=401, body={"error": {"message": f"Incorrect API key provided: {UPSTREAM_KEY}"}})
    url = harness.start(
        [text_reply("fine"), echo],
        openai_api_key=UPSTREAM_KEY,
        anthropic_api_key=CLIENT_KEY,
        log_mode=mode,
        upstream_retries=0,
    )
    auth = {"authorization": f"Bearer {CLIENT_KEY}"}
    outputs = []
    for _ in range(2):
        _, raw = await post(url + "/v1/messages", body(stream=True), auth)
        outputs.append(raw)
    _, refused = await post(url + "/v1/messages", body(), {"x-api-key": CLIENT_KEY + "x"})
    outputs.append(refused)
    pool = HTTPConnectionPool(reactor, persistent=False)
    for path in ("/health", "/"):
        outputs.append(await (await treq.get(url + path, pool=pool)).content())
    produced = b"\n".join(outputs).decode() + "\n".join(formatEvent(e) or "" for e in log_events)
    assert "Incorrect API key provided" in produced  # the echo itself was seen ...
    for secret in (UPSTREAM_KEY, CLIENT_KEY):
        assert secret not in produced  # ... but never the key

"""Passthrough mode: bytes forwarded unchanged, streamed as they arrive."""

from __future__ import annotations

import json

import pytest_twisted
from twisted.internet import reactor, task
from twisted.internet.protocol import ClientCreator
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from ccproxy.config import Settings
from ccproxy.service import build_site
from tests.web.test_integration import RawClient, body

EVENTS = [
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_real","type":"message","role":"assistant","model":"claude-opus-5-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":9,"output_tokens":1}}}\n\n',
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n',
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"R\\u00e9al"}}\n\n',
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":3}}\n\n',
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
]


class FakeAnthropic(Resource):
    """Answers /v1/messages with a fixed SSE stream, one event every 50 ms."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[bytes, dict[str, str], bytes]] = []
        self.sent_at: list[float] = []

    def render_POST(self, request: Request) -> int:  # noqa: N802
        headers = {k.decode().lower(): v[-1].decode() for k, v in request.requestHeaders.getAllRawHeaders()}
        self.seen.append((request.uri, headers, request.content.read()))
        request.setHeader(b"content-type", b"text/event-stream")
        request.setHeader(b"request-id", b"req_from_anthropic")
        self._send(request, list(EVENTS))
        return NOT_DONE_YET

    def _send(self, request: Request, events: list[bytes]) -> None:
        if request.finished:
            return
        if not events:
            request.finish()
            return
        request.write(events.pop(0))
        self.sent_at.append(reactor.seconds())
        reactor.callLater(0.05, self._send, request, events)


@pytest_twisted.ensureDeferred
async def test_passthrough_forwards_bytes_unchanged_and_incrementally() -> None:
    """Request and response bytes pass unchanged; events arrive as they are sent."""
    fake = FakeAnthropic()
    anthropic_site = Site(fake)
    anthropic_port = reactor.listenTCP(0, anthropic_site, interface="127.0.0.1")
    settings = Settings(
        passthrough_mode=True,
        anthropic_upstream_url=f"http://127.0.0.1:{anthropic_port.getHost().port}",
        openai_api_key="sk-never-sent",
    )
    site, upstream, _, _ = build_site(settings, reactor)
    upstream.start()
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    try:
        client = await ClientCreator(reactor, RawClient).connectTCP("127.0.0.1", port.getHost().port)
        payload = json.dumps(body(stream=True)).encode()
        client.transport.write(
            b"POST /v1/messages?beta=true HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"x-api-key: sk-ant-client-own-key\r\nanthropic-version: 2023-06-01\r\n"
            b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
        )
        await client.got_data  # a content_block_delta arrived ...
        assert len(fake.sent_at) < len(EVENTS)  # ... before the upstream sent everything
        for _ in range(200):
            if client.received.endswith(b"0\r\n\r\n"):
                break
            await task.deferLater(reactor, 0.01, lambda: None)
        head, _, chunked = client.received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert b"req_from_anthropic" in head  # the upstream's own headers come back
        assert _dechunk(chunked) == b"".join(EVENTS)
        uri, headers, sent = fake.seen[0]
        assert uri == b"/v1/messages?beta=true"
        assert sent == payload
        assert headers["x-api-key"] == "sk-ant-client-own-key"
        assert "sk-never-sent" not in json.dumps(headers)
        client.transport.loseConnection()
    finally:
        await port.stopListening()
        await anthropic_port.stopListening()
        await upstream.stop()


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return out

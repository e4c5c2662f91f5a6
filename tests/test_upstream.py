"""The upstream client's own pieces: request target, body producer, headers."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ccproxy.config import Settings
from ccproxy.upstream import BytesBody, Upstream, request_target


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


def test_headers_carry_the_key_and_utf8_extras() -> None:
    upstream = Upstream(Settings(openai_api_key="sk-test"), Clock())
    headers = upstream.headers({"X-Title": "Café ☕"})
    assert headers.getRawHeaders(b"authorization") == [b"Bearer sk-test"]
    assert headers.getRawHeaders(b"x-title") == ["Café ☕".encode()]
    assert headers.getRawHeaders(b"accept") == [b"text/event-stream, application/json"]
    # Each call gets its own headers: extras never leak into the next request.
    assert upstream.headers({}).getRawHeaders(b"x-title") is None

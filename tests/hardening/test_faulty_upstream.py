"""Faulty upstreams: every fault ends, in time, in the right Anthropic error, and the
upstream connection is given up.

Byte-level faults come from L{tests.hardening.faulty} (a raw-socket server); HTTP
errors from the scripted upstream. Timeouts are set small per test (UPSTREAM_TIMEOUT
0.5 s, PING_INTERVAL 0.2 s, CONNECT_TIMEOUT 0.5 s), so each case takes about a second.

What the client must see (PROTOCOL.md C and H.9): before the stream has started, an
HTTP error whose status and C{error.type} match; after it has started (a streaming
client whose upstream was slower than PING_INTERVAL already has C{message_start} and
pings), an C{event: error} with the same C{error.type}, and nothing after it.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, task

from ccproxy.grammar import check_events
from ccproxy.sse import SSEParser
from tests.fake_upstream import Reply
from tests.fake_upstream import chunk as oai_chunk
from tests.hardening.faulty import (
    SSE_HEAD,
    Fault,
    FaultyUpstream,
    Flood,
    UpstreamConnection,
    chunk,
    listen,
)
from tests.hardening.wire import Response, http_request, pipeline

TIMEOUT = 0.5
PING = 0.2
FAST = {"upstream_timeout": TIMEOUT, "ping_interval": PING, "connect_timeout": TIMEOUT, "retry_backoff": 0.01}


def _request(stream: bool) -> bytes:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    return http_request(json.dumps(body).encode())


def _sse(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


ROLE = _sse(oai_chunk({"role": "assistant", "content": ""}))
HELLO = _sse(oai_chunk({"content": "Hel"}))


def events_of(response: Response) -> list[tuple[str, dict[str, Any]]]:
    parser = SSEParser()
    found = parser.feed(response.body) + parser.close()
    return [(e.event or "", json.loads(e.data)) for e in found]


async def call(reactor: Any, port: int, stream: bool, within: float) -> tuple[Response, float]:
    """One request through the proxy; fails if it takes longer than C{within} seconds."""
    started = reactor.seconds()
    sending = defer.Deferred.fromCoroutine(pipeline(reactor, port, [_request(stream)]))
    responses = await sending.addTimeout(within, reactor)
    assert len(responses) == 1, "the proxy closed the connection without an answer"
    return responses[0], reactor.seconds() - started


def assert_error(response: Response, stream: bool, status: int, kind: str, started: bool | None = None) -> str:
    """The client got C{kind}: as HTTP C{status} before the stream started, as an
    C{event: error} after. Returns the error message."""
    if response.status == 200:
        assert stream, f"a non-streaming client got 200: {response.body[:300]!r}"
        assert started is not False, "the stream should not have started"
        events = events_of(response)
        check_events(events)  # message_start first, error last, nothing after
        name, payload = events[-1]
        assert name == "error", events[-3:]
        assert payload["error"]["type"] == kind, payload
        return str(payload["error"]["message"])
    assert started is not True, f"expected the stream to have started, got HTTP {response.status}"
    assert response.status == status, (response.status, response.body[:300])
    payload = response.json()
    assert payload["type"] == "error" and payload["error"]["type"] == kind, payload
    assert response.headers["content-type"] == "application/json"
    assert payload["request_id"] == response.headers["request-id"]
    return str(payload["error"]["message"])


async def released(reactor: Any, upstream: FaultyUpstream, seconds: float = 1.0) -> None:
    """Wait until the proxy has closed every upstream connection left unanswered."""
    deadline = reactor.seconds() + seconds
    while upstream.held():
        assert reactor.seconds() < deadline, f"{len(upstream.held())} upstream connection(s) still held by the proxy"
        await task.deferLater(reactor, 0.01, lambda: None)


@pytest.fixture
def faulty(reactor: Any) -> Iterator[Any]:
    """C{start(fault) -> (factory, base_url)}; ports and leftover connections are closed after."""
    started: list[tuple[FaultyUpstream, Any]] = []

    def start(fault: Fault) -> tuple[FaultyUpstream, str]:
        factory, port = listen(reactor, fault)
        started.append((factory, port))
        return factory, f"http://127.0.0.1:{port.getHost().port}/v1"

    yield start
    for factory, port in started:
        for connection in factory.connections:
            if not connection.closed:
                connection.transport.abortConnection()  # type: ignore[union-attr]
        pytest_twisted.blockon(defer.maybeDeferred(port.stopListening))


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


# -- the faults ----------------------------------------------------------------------------


def never_answer(c: UpstreamConnection) -> None:
    """Accept the request, say nothing."""


def headers_then_stall(c: UpstreamConnection) -> None:
    c.write(SSE_HEAD)


def event_then_stall(c: UpstreamConnection) -> None:
    c.write(SSE_HEAD + chunk(ROLE + HELLO))


def drip_one_byte_a_second(c: UpstreamConnection) -> None:
    """A valid event, one byte per second (slower than UPSTREAM_TIMEOUT allows)."""
    c.write(SSE_HEAD)
    data = ROLE + HELLO

    def drip(at: int = 0) -> None:
        if at < len(data):
            c.write(chunk(data[at : at + 1]))
            c.later(1.0, lambda: drip(at + 1))

    drip()


def drip_a_line_that_never_ends(c: UpstreamConnection) -> None:
    """Bytes faster than UPSTREAM_TIMEOUT, but never a whole line: no progress at all."""
    c.write(SSE_HEAD + chunk(ROLE))

    def drip() -> None:
        c.write(chunk(b"x"))
        c.later(TIMEOUT / 5, drip)

    drip()


def garbage_instead_of_sse(c: UpstreamConnection) -> None:
    c.write(SSE_HEAD + chunk(b"Hello! I am not an event stream.\n\nlorem ipsum\n\x00\xff\xfe\n\n") + b"0\r\n\r\n")
    c.answered = True


def data_that_is_not_json(c: UpstreamConnection) -> None:
    c.write(SSE_HEAD + chunk(ROLE + b"data: <html><body>oops</body></html>\n\n") + b"0\r\n\r\n")
    c.answered = True


def html_error_page_with_200(c: UpstreamConnection) -> None:
    page = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"
    c.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\n\r\n%s" % (len(page), page))
    c.answered = True


def close_mid_chunk(c: UpstreamConnection) -> None:
    c.write(SSE_HEAD + chunk(ROLE + HELLO) + b"400\r\ndata: {\"id\":\"chatcmpl")
    c.close()


def close_mid_content_length(c: UpstreamConnection) -> None:
    c.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 5000\r\n\r\n" + ROLE + HELLO)
    c.close()


def reset_mid_stream(c: UpstreamConnection) -> None:
    c.write(SSE_HEAD + chunk(ROLE + HELLO))
    c.later(0.05, lambda: c.transport.abortConnection())  # type: ignore[union-attr]


def close_before_headers(c: UpstreamConnection) -> None:
    c.close()


def half_a_status_line(c: UpstreamConnection) -> None:
    c.write(b"HTTP/1.1 20")
    c.close()


def not_http_at_all(c: UpstreamConnection) -> None:
    c.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    c.close()


def endless_line(c: UpstreamConnection) -> None:
    """The "2 GB" answer: bytes without a newline, as fast as the proxy takes them."""
    c.write(SSE_HEAD + chunk(ROLE))
    Flood(c, chunk(b"x" * 65536))


def endless_junk_lines(c: UpstreamConnection) -> None:
    """Lines without an SSE field, forever: never an event, never silent."""
    c.write(SSE_HEAD + chunk(ROLE))
    Flood(c, chunk(b"this is not a field\n" * 3000))


def endless_json(c: UpstreamConnection) -> None:
    """A JSON answer (not SSE) that never ends; close-delimited."""
    c.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n[")
    Flood(c, b"1," * 32768)


def json_that_is_not_json(c: UpstreamConnection) -> None:
    body = b"{\"choices\": [ this is not json"
    c.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    c.answered = True


# fault, the HTTP status a client gets before its stream started, error.type, and
# whether a streaming client's stream has started by then (None: either). A broken
# answer is 500 api_error (H.9 maps 502-class failures to 500); an upstream that cannot
# be reached or answers no HTTP at all is 502 api_error, as test_integration expects.
FAULTS: list[tuple[Fault, int, str, bool | None]] = [
    (never_answer, 504, "timeout_error", True),
    (headers_then_stall, 504, "timeout_error", True),
    (event_then_stall, 504, "timeout_error", True),
    (drip_one_byte_a_second, 504, "timeout_error", True),
    (drip_a_line_that_never_ends, 504, "timeout_error", True),
    (garbage_instead_of_sse, 500, "api_error", None),
    (data_that_is_not_json, 500, "api_error", None),
    (html_error_page_with_200, 500, "api_error", None),
    (close_mid_chunk, 500, "api_error", True),
    (close_mid_content_length, 500, "api_error", True),
    (reset_mid_stream, 500, "api_error", True),
    (close_before_headers, 502, "api_error", None),
    (half_a_status_line, 502, "api_error", None),
    (not_http_at_all, 502, "api_error", None),
    (endless_line, 500, "api_error", None),
    (endless_junk_lines, 500, "api_error", None),
    (endless_json, 500, "api_error", None),
    (json_that_is_not_json, 500, "api_error", None),
]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("fault, status, kind, started", FAULTS, ids=[f[0].__name__ for f in FAULTS])
@pytest_twisted.ensureDeferred
async def test_byte_level_fault(
    harness: Any, faulty: Any, reactor: Any, log_errors: Any,
    fault: Fault, status: int, kind: str, started: bool | None, stream: bool,
) -> None:
    """Each fault ends in time with the right error; no connection is left behind."""
    upstream, base = faulty(fault)
    url = harness.start([], openai_base_url=base, upstream_retries=1, **FAST)
    response, elapsed = await call(reactor, _port(url), stream, within=TIMEOUT * 2 + 3)
    message = assert_error(response, stream, status, kind, started if stream else False)
    # Timeouts end at UPSTREAM_TIMEOUT; floods at the size caps (16 MiB read: well under).
    assert elapsed < TIMEOUT + 1.0, f"ended after {elapsed:.2f} s"
    if fault is html_error_page_with_200:
        assert "Bad Gateway" in message, message  # the page's text, not "stream ended"
    await released(reactor, upstream)
    assert not log_errors, log_errors.describe()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest_twisted.ensureDeferred
async def test_connection_refused_is_api_error(harness: Any, reactor: Any, log_errors: Any, stream: bool) -> None:
    """Nothing listens: retried, then 502 api_error naming the host (H.9: unreachable)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    url = harness.start([], openai_base_url=f"http://127.0.0.1:{dead}/v1", upstream_retries=2, **{**FAST, "ping_interval": 5.0})
    response, elapsed = await call(reactor, _port(url), stream, within=2)
    message = assert_error(response, stream, 502, "api_error", started=False)
    assert "127.0.0.1" in message and "refused" in message.lower()


@pytest_twisted.ensureDeferred
async def test_connection_refused_after_the_stream_started_is_an_error_event(harness: Any, reactor: Any, log_errors: Any) -> None:
    """Retries that outlast PING_INTERVAL: the stream has begun, so the error is an event."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    url = harness.start(
        [], openai_base_url=f"http://127.0.0.1:{dead}/v1", upstream_retries=3,
        **{**FAST, "ping_interval": 0.05, "retry_backoff": 0.1},
    )
    response, elapsed = await call(reactor, _port(url), True, within=3)
    assert_error(response, True, 502, "api_error", started=True)
    assert not log_errors, log_errors.describe()


@pytest_twisted.ensureDeferred
async def test_connect_timeout(harness: Any, reactor: Any, log_errors: Any) -> None:
    """A listener whose accept queue is full drops the SYN: CONNECT_TIMEOUT ends it."""
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    fillers = []
    try:
        # Fill the accept queue: later connection attempts get no answer at all.
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(full.getsockname())
            fillers.append(filler)
        url = harness.start(
            [], openai_base_url=f"http://127.0.0.1:{full.getsockname()[1]}/v1", upstream_retries=0,
            **{**FAST, "connect_timeout": 0.3, "upstream_timeout": 5.0},
        )
        response, elapsed = await call(reactor, _port(url), False, within=3)
        message = assert_error(response, False, 502, "api_error", started=False)
        assert elapsed < 1.5, elapsed
        assert "timeout" in message.lower() or "timed out" in message.lower(), message
    finally:
        for filler in fillers:
            filler.close()
        full.close()
    assert not log_errors, log_errors.describe()


def _error(status: int, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status=status, body={"error": {"message": f"upstream says {status}", "type": "x"}}, headers=headers or {})


# status, Retry-After (None: absent), how many answers the upstream gives before giving
# up, client status, error.type, client retry-after (None: absent)
STATUS_CASES = [
    (429, None, 1, 429, "rate_limit_error", None),
    (429, "0", 3, 429, "rate_limit_error", "0"),  # waited out and retried, then passed on
    (429, "120", 1, 429, "rate_limit_error", "120"),  # too long to wait: at once
    (500, None, 1, 500, "api_error", None),
    (500, "7", 1, 500, "api_error", "7"),
    (502, None, 3, 500, "api_error", None),
    (502, "1", 3, 500, "api_error", "1"),
    (503, None, 3, 529, "overloaded_error", None),
    (503, "2", 3, 529, "overloaded_error", "2"),
    (529, None, 3, 529, "overloaded_error", None),
    (529, "3", 3, 529, "overloaded_error", "3"),
]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(
    "upstream_status, retry_after, tries, status, kind, client_retry_after",
    STATUS_CASES,
    ids=[f"{s[0]}-{'ra' + s[1] if s[1] else 'no-ra'}" for s in STATUS_CASES],
)
@pytest_twisted.ensureDeferred
async def test_upstream_error_status(
    harness: Any, reactor: Any, log_errors: Any, stream: bool,
    upstream_status: int, retry_after: str | None, tries: int, status: int, kind: str, client_retry_after: str | None,
) -> None:
    """429/500/502/503/529, with and without Retry-After: retried where safe (and only
    as often as UPSTREAM_RETRIES allows), then mapped per H.9 with retry-after passed on."""
    headers = {"retry-after": retry_after} if retry_after else {}
    url = harness.start([_error(upstream_status, headers) for _ in range(3)], upstream_retries=2, **FAST)
    response, elapsed = await call(reactor, _port(url), stream, within=3)
    assert_error(response, stream, status, kind, started=False)
    assert response.headers.get("retry-after") == client_retry_after
    assert len(harness.upstream.received) == tries
    assert not harness.upstream.open_requests
    assert not log_errors, log_errors.describe()


def late_status(status: int, retry_after: str | None = None) -> Fault:
    """An error status, sent only after PING_INTERVAL: a streaming client has its stream."""

    def fault(c: UpstreamConnection) -> None:
        body = json.dumps({"error": {"message": f"upstream says {status}"}}).encode()
        extra = b"Retry-After: %s\r\n" % retry_after.encode() if retry_after else b""
        head = b"HTTP/1.1 %d Error\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n" % (status, extra, len(body))

        def answer() -> None:
            c.write(head + body)
            c.answered = True

        c.later(PING * 2, answer)

    return fault


LATE = [
    (429, None, 429, "rate_limit_error"),
    (429, "1", 429, "rate_limit_error"),
    (500, None, 500, "api_error"),
    (502, None, 500, "api_error"),
    (503, "5", 529, "overloaded_error"),
    (529, None, 529, "overloaded_error"),
]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("upstream_status, retry_after, status, kind", LATE, ids=[f"{s[0]}-{s[1] or 'no-ra'}" for s in LATE])
@pytest_twisted.ensureDeferred
async def test_error_status_after_the_stream_started(
    harness: Any, faulty: Any, reactor: Any, log_errors: Any,
    upstream_status: int, retry_after: str | None, status: int, kind: str, stream: bool,
) -> None:
    """An upstream error that arrives after PING_INTERVAL: a streaming client already has
    message_start and pings, so it gets an event: error of the mapped type (and no
    retry, since the stream has begun); a JSON client still gets the HTTP status."""
    upstream, base = faulty(late_status(upstream_status, retry_after))
    url = harness.start([], openai_base_url=base, upstream_retries=2, **FAST)
    response, elapsed = await call(reactor, _port(url), stream, within=5)
    assert_error(response, stream, status, kind, started=stream)
    retried = upstream_status in (502, 503, 529) or (upstream_status == 429 and retry_after is not None)
    if stream:
        assert upstream.requests == 1  # the stream has begun: no second try
    else:
        assert response.headers.get("retry-after") == retry_after
        assert upstream.requests == (3 if retried else 1)
    await released(reactor, upstream)
    assert not log_errors, log_errors.describe()


@pytest_twisted.ensureDeferred
async def test_proxy_serves_normally_after_faults(harness: Any, faulty: Any, reactor: Any, log_errors: Any) -> None:
    """After a run of faults on one proxy, a healthy answer still goes through."""
    answers = iter([never_answer, endless_line, close_mid_chunk, html_error_page_with_200])

    def next_fault(c: UpstreamConnection) -> None:
        fault = next(answers, None)
        if fault is None:
            body = ROLE + HELLO + _sse(oai_chunk({}, "stop")) + b"data: [DONE]\n\n"
            c.write(SSE_HEAD + chunk(body) + b"0\r\n\r\n")
            c.answered = True
        else:
            fault(c)

    upstream, base = faulty(next_fault)
    url = harness.start([], openai_base_url=base, upstream_retries=0, **FAST)
    for _ in range(4):
        response, _ = await call(reactor, _port(url), True, within=3)
        assert response.status in (200, 500, 502, 504)
    response, _ = await call(reactor, _port(url), True, within=3)
    events = events_of(response)
    check_events(events)
    assert events[-1][0] == "message_stop", events[-1]
    await released(reactor, upstream)
    assert not log_errors, log_errors.describe()

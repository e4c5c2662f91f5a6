"""Streaming that never hangs: retries, timeouts, pings, back-pressure, connection reuse.

Real sockets on 127.0.0.1 against the scripted upstream; short timeouts so each case
ends in well under a second.
"""

from __future__ import annotations

import json
from typing import Any

import pytest_twisted
from twisted.internet import task

from ccproxy.grammar import check_events
from tests.fake_upstream import Reply, chunk, text_reply
from tests.web.test_integration import body, open_stream, post, sse_events


async def wait_until(predicate: Any, seconds: float = 2.0) -> None:
    """Poll C{predicate} on the reactor until it holds; fail after C{seconds}."""
    from twisted.internet import reactor

    deadline = reactor.seconds() + seconds
    while not predicate():
        assert reactor.seconds() < deadline, "condition not reached in time"
        await task.deferLater(reactor, 0.01, lambda: None)


@pytest_twisted.ensureDeferred
async def test_429_with_short_retry_after_then_success_is_one_success(harness: Any) -> None:
    """A 429 whose Retry-After fits RETRY_MAX_WAIT is waited out and retried."""
    url = harness.start(
        [Reply(status=429, body={"error": {"message": "slow down"}}, headers={"retry-after-ms": "50"}), text_reply("fine")]
    )
    response, raw = await post(url + "/v1/messages", body(stream=True))
    assert response.code == 200
    events = sse_events(raw)
    check_events(events)
    assert len(harness.upstream.received) == 2


@pytest_twisted.ensureDeferred
async def test_503_then_success_is_retried(harness: Any) -> None:
    """502/503/529 are retried with back-off before anything reaches the client."""
    url = harness.start([Reply(status=503, body={"error": {"message": "overloaded"}}), text_reply("ok")])
    response, raw = await post(url + "/v1/messages", body())
    assert response.code == 200
    assert json.loads(raw)["content"][0]["text"] == "ok"
    assert len(harness.upstream.received) == 2


@pytest_twisted.ensureDeferred
async def test_retries_are_bounded(harness: Any) -> None:
    """After UPSTREAM_RETRIES more tries the client gets the mapped error."""
    url = harness.start([Reply(status=502, body={"error": {"message": "bad gateway"}}) for _ in range(3)], upstream_retries=2)
    response, raw = await post(url + "/v1/messages", body())
    assert response.code == 500
    assert json.loads(raw)["error"]["type"] == "api_error"
    assert len(harness.upstream.received) == 3


@pytest_twisted.ensureDeferred
async def test_failure_after_first_byte_is_an_error_event_not_a_retry(harness: Any) -> None:
    """Once content reached the client, an upstream failure ends the stream with an error."""
    url = harness.start([Reply(chunks=[chunk({"content": "half an ans"})], done=False), text_reply("never sent")])
    response, raw = await post(url + "/v1/messages", body(stream=True))
    events = sse_events(raw)
    check_events(events)
    assert [name for name, _ in events][-1] == "error"
    assert len(harness.upstream.received) == 1


@pytest_twisted.ensureDeferred
async def test_upstream_that_never_answers_times_out_with_504(harness: Any) -> None:
    """No headers within UPSTREAM_TIMEOUT -> 504 timeout_error (not retried)."""
    url = harness.start([Reply(hang=True)], upstream_timeout=0.3)
    response, raw = await post(url + "/v1/messages", body())
    assert response.code == 504
    assert json.loads(raw)["error"]["type"] == "timeout_error"
    assert len(harness.upstream.received) == 1


@pytest_twisted.ensureDeferred
async def test_h11_12_silent_upstream_gets_pings_then_timeout_event(harness: Any) -> None:
    """A streaming client of a silent upstream gets pings every interval, then the
    UPSTREAM_TIMEOUT ends the stream with a timeout_error event."""
    silent = Reply(chunks=[chunk({"role": "assistant", "content": ""})], hang=True)
    url = harness.start([silent], ping_interval=0.1, upstream_timeout=0.65)
    response, raw = await post(url + "/v1/messages", body(stream=True))
    assert response.code == 200
    events = sse_events(raw)
    check_events(events)
    names = [name for name, _ in events]
    assert names[0] == "message_start"
    assert names.count("ping") >= 5  # the first ping plus one per 0.1 s of silence
    assert names[-1] == "error"
    assert events[-1][1]["error"]["type"] == "timeout_error"
    await wait_until(lambda: not harness.upstream.open_requests)  # upstream released


@pytest_twisted.ensureDeferred
async def test_slow_headers_start_the_stream_early_with_pings(harness: Any) -> None:
    """An upstream that takes longer than PING_INTERVAL to send headers does not leave a
    streaming client without bytes: message_start and pings go out first."""
    url = harness.start([Reply(hang=True)], ping_interval=0.1, upstream_timeout=0.5)
    response, raw = await post(url + "/v1/messages", body(stream=True))
    assert response.code == 200
    events = sse_events(raw)
    check_events(events)
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names.count("ping") >= 3
    assert events[-1][1]["error"]["type"] == "timeout_error"


@pytest_twisted.ensureDeferred
async def test_second_request_reuses_the_pooled_connection(harness: Any, log_events: list[dict[str, Any]]) -> None:
    """The upstream pool keeps the connection: two requests, one client port. Opening it
    logs nothing of Twisted's factory start and stop (two lines per connection)."""
    url = harness.start([text_reply("one"), text_reply("two")])
    for _ in range(2):
        response, _ = await post(url + "/v1/messages", body())
        assert response.code == 200
    first, second = harness.upstream.received
    assert first.peer_port == second.peer_port != 0
    factories = [repr(e.get("factory")) for e in log_events if str(e.get("log_format", "")).endswith("factory {factory!r}")]
    clients = [factory for factory in factories if "HTTP11ClientFactory" in factory]
    # The tests' own client (a HostnameEndpoint) is as noisy as Twisted makes it; the proxy's
    # upstream pool connects to 127.0.0.1 through a TCP4ClientEndpoint.
    assert any("HostnameEndpoint" in factory for factory in clients)  # the events are there to be seen
    assert [factory for factory in clients if "TCP4ClientEndpoint" in factory] == []


@pytest_twisted.ensureDeferred
async def test_stalled_client_pauses_the_upstream(harness: Any, reactor: Any) -> None:
    """A client that stops reading pauses the upstream; the proxy holds little in between."""
    url = harness.start([Reply(flood=True)])
    port = int(url.rsplit(":", 1)[1])
    client = await open_stream(port)
    client.transport.pauseProducing()  # stop reading: the proxy's writes back up
    # Kernel socket buffers on loopback hold a few MB; once they are full the upstream
    # must be paused and stay paused.
    stalled = False
    for _ in range(50):
        flood = harness.upstream.flood
        written = flood.written if flood else 0
        await task.deferLater(reactor, 0.1, lambda: None)
        if flood is not None and flood.paused and flood.written == written:
            stalled = True
            break
    assert flood is not None and stalled, "upstream never stopped writing"
    in_flight = flood.written - len(client.received)
    assert in_flight < 16 * 1024 * 1024, f"{in_flight} bytes between upstream and client"
    client.transport.resumeProducing()
    await task.deferLater(reactor, 0.05, lambda: None)
    client.transport.loseConnection()
    for _ in range(100):
        if flood.stopped or harness.upstream.finished_or_lost:
            break
        await task.deferLater(reactor, 0.01, lambda: None)
    assert harness.upstream.finished_or_lost == 1


@pytest_twisted.ensureDeferred
async def test_retries_do_not_keep_a_streaming_client_silent(harness: Any) -> None:
    """Back-off between retries counts toward PING_INTERVAL: the stream starts (and pings)
    on time, after which no more retries are made and the failure is an error event."""
    failing = [Reply(status=503, body={"error": {"message": "overloaded"}}) for _ in range(6)]
    url = harness.start(failing, ping_interval=0.1, retry_backoff=0.08, upstream_retries=5)
    response, raw = await post(url + "/v1/messages", body(stream=True))
    assert response.code == 200
    events = sse_events(raw)
    check_events(events)
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-1] == "error"
    assert events[-1][1]["error"]["type"] == "overloaded_error"
    assert len(harness.upstream.received) < 6

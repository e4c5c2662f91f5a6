"""A body dripped slowly enough to dodge the idle timeout still ends, with a 408."""

from __future__ import annotations

import json
from typing import Any

import pytest_twisted
from twisted.internet import task
from twisted.internet.protocol import ClientCreator

from tests.hardening.test_security import Answer


@pytest_twisted.ensureDeferred
async def test_dripped_body_gets_408_after_the_body_timeout(harness: Any, reactor: Any) -> None:
    """One byte every 50 ms keeps the connection busy; REQUEST_BODY_TIMEOUT ends it."""
    url = harness.start([], request_body_timeout=0.5)
    port = int(url.rsplit(":", 1)[1])
    client = await ClientCreator(reactor, Answer).connectTCP("127.0.0.1", port)
    client.transport.write(
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )
    started = reactor.seconds()
    drip = task.LoopingCall(lambda: client.transport.write(b" "))
    drip.clock = reactor
    drip.start(0.05)
    try:
        raw = await client.closed.addTimeout(5, reactor)
    finally:
        drip.stop()
    elapsed = reactor.seconds() - started
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert json.loads(body)["error"]["type"] == "timeout_error"
    assert 0.4 < elapsed < 2.0
    assert harness.upstream.received == []

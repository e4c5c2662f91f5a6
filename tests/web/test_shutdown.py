"""Stopping the service: running streams get a grace period, then an error event."""

from __future__ import annotations

import pytest_twisted
from twisted.internet import reactor, task

from ccproxy.config import Settings
from ccproxy.service import UpstreamService, build_context, site_for
from tests.fake_upstream import Reply, chunk, start_fake_upstream
from tests.web.test_integration import open_stream


@pytest_twisted.ensureDeferred
async def test_stop_drains_then_closes_streams_with_an_error_event() -> None:
    """stopService waits SHUTDOWN_GRACE for a running stream, then ends it with an
    overloaded_error event and closes the upstream connection."""
    endless = Reply(chunks=[chunk({"content": f"w{i} "}) for i in range(1000)], interval=0.05)
    fake, fake_port = start_fake_upstream([endless])
    settings = Settings(openai_base_url=f"http://127.0.0.1:{fake_port.getHost().port}/v1", shutdown_grace=0.3)
    context = build_context(settings, reactor)
    service = UpstreamService(context)
    service.startService()
    port = reactor.listenTCP(0, site_for(context), interface="127.0.0.1")
    try:
        client = await open_stream(port.getHost().port)
        assert len(context.exchanges) == 1
        started = reactor.seconds()
        await service.stopService()
        elapsed = reactor.seconds() - started
        assert 0.25 <= elapsed < 2.0
        await task.deferLater(reactor, 0.1, lambda: None)
        head, _, rest = client.received.partition(b"\r\n\r\n")
        assert b'"type":"overloaded_error"' in rest and b"shutting down" in rest
        assert not context.exchanges
        assert fake.open_requests == []
        client.transport.loseConnection()
    finally:
        await port.stopListening()
        await fake_port.stopListening()

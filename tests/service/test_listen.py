"""The listening socket holds a burst of connections until the reactor accepts them."""

from __future__ import annotations

import select
import socket
import time
from typing import Any

import pytest_twisted
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory, Protocol

from ccproxy.config import Settings
from ccproxy.service import LISTEN_BACKLOG, endpoint_description

BURST = 200  # parallel connections, four times Twisted's default backlog of 50


def _connected_within(port: int, count: int, seconds: float) -> int:
    """Open C{count} connections at once; how many the kernel completes within C{seconds}."""
    pending = []
    for _ in range(count):
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        client.setblocking(False)
        client.connect_ex(("127.0.0.1", port))
        pending.append(client)
    done: list[socket.socket] = []
    deadline = time.monotonic() + seconds
    try:
        while pending and time.monotonic() < deadline:
            _, writable, _ = select.select([], pending, [], max(0.0, deadline - time.monotonic()))
            for client in writable:
                pending.remove(client)
                if client.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    done.append(client)
        return len(done)
    finally:
        for client in pending + done:
            client.close()


@pytest_twisted.ensureDeferred
async def test_a_burst_of_connections_waits_in_the_backlog(reactor: Any) -> None:
    """The reactor does not run while the burst connects (no await in between), as when it is
    busy with other requests: every connection of the burst must still complete its handshake
    in the kernel's queue. With Twisted's default backlog of 50, about 50 do and the rest are
    retried a second later by their clients."""
    assert LISTEN_BACKLOG >= 2 * BURST
    description = endpoint_description(Settings(port=0, host="127.0.0.1"))
    listening = await serverFromString(reactor, description).listen(Factory.forProtocol(Protocol))
    try:
        assert _connected_within(listening.getHost().port, BURST, seconds=0.5) == BURST
    finally:
        await listening.stopListening()

"""Shared fixtures: the reactor, a scripted upstream and a ccproxy Site on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import DeferredList
from twisted.logger import globalLogPublisher

from ccproxy.config import Settings
from ccproxy.service import build_site
from tests.fake_upstream import FakeOpenAI, Script, start_fake_upstream
from tests.tls import Authority


@pytest.fixture(scope="session")
def reactor() -> Any:
    """The global reactor pytest-twisted runs."""
    from twisted.internet import reactor as global_reactor

    return global_reactor


class Harness:
    """A running fake upstream and a ccproxy Site in front of it."""

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._ports: list[Any] = []
        self._upstreams: list[Any] = []
        self.upstream: FakeOpenAI | None = None
        self.url = ""

    def start(self, script: Script, tls: Authority | None = None, **settings: Any) -> str:
        """Start both; return the proxy's base URL.

        @param tls: serve the upstream over https with this CA's certificate.
        """
        self.upstream, upstream_port = start_fake_upstream(script, tls)
        self._ports.append(upstream_port)
        scheme = "http" if tls is None else "https"
        return self.start_proxy(f"{scheme}://127.0.0.1:{upstream_port.getHost().port}/v1", **settings)

    def start_proxy(self, upstream_url: str, **settings: Any) -> str:
        """Start a ccproxy Site in front of C{upstream_url}; return its base URL."""
        values: dict[str, Any] = {
            "openai_base_url": upstream_url,
            "openai_api_key": "sk-upstream-secret",
            "retry_backoff": 0.01,
        }
        values.update(settings)
        site, upstream, _, _ = build_site(Settings(**values), self._reactor)
        upstream.start()
        self._upstreams.append(upstream)
        port = self._reactor.listenTCP(0, site, interface="127.0.0.1")
        self._ports.append(port)
        self.url = f"http://127.0.0.1:{port.getHost().port}"
        return self.url

    def stop(self) -> None:
        waits = [u.stop() for u in self._upstreams]
        waits += [p.stopListening() for p in self._ports]
        pytest_twisted.blockon(DeferredList([w for w in waits if w is not None]))


@pytest.fixture
def log_events() -> Iterator[list[dict[str, Any]]]:
    """Every twisted.logger event emitted while the test runs, whatever its level."""
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


@pytest.fixture
def harness(reactor: Any) -> Iterator[Harness]:
    """A L{Harness}, stopped after the test."""
    h = Harness(reactor)
    yield h
    h.stop()

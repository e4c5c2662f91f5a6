"""The upstream HTTP client: one pooled treq client per process, streaming bodies.

The pool is created when the service starts (never before twistd forks) and its cached
connections expire before typical provider keep-alive limits, so a reused connection is
rarely one the provider already closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import define, field
from treq.client import HTTPClient
from twisted.internet.defer import Deferred, succeed
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import IResponse

from ccproxy.config import Settings

__all__ = ["Upstream", "CACHED_CONNECTION_SECONDS"]

CACHED_CONNECTION_SECONDS = 50
MAX_IDLE_PER_HOST = 64  # idle connections kept per upstream; above the usual concurrency


@define
class Upstream:
    """Posts Chat Completions requests to the configured provider.

    @ivar client: an injected treq client (tests use C{StubTreq}); when C{None}, L{start}
        builds a pooled one.
    """

    settings: Settings
    reactor: Any
    client: Any = None
    _pool: HTTPConnectionPool | None = field(default=None, init=False)

    def start(self) -> None:
        """Create the connection pool and client (from C{startService})."""
        if self.client is not None:
            return
        pool = HTTPConnectionPool(self.reactor, persistent=True)
        pool.maxPersistentPerHost = MAX_IDLE_PER_HOST
        pool.cachedConnectionTimeout = CACHED_CONNECTION_SECONDS
        pool.retryAutomatically = False
        agent = Agent(self.reactor, connectTimeout=self.settings.connect_timeout, pool=pool)
        self._pool = pool
        self.client = HTTPClient(agent)

    @property
    def pool(self) -> HTTPConnectionPool | None:
        """The shared connection pool (C{None} before L{start} or with an injected client)."""
        return self._pool

    def stop(self) -> Deferred[None]:
        """Close idle pooled connections (from C{stopService})."""
        pool, self._pool = self._pool, None
        if pool is None:
            return succeed(None)
        self.client = None
        result: Deferred[None] = pool.closeCachedConnections()
        return result

    def headers(self, extra: Mapping[str, str]) -> dict[str, list[str]]:
        """Headers for an upstream call: JSON in, SSE out, the provider key, extras."""
        headers = {
            "Content-Type": ["application/json"],
            "Accept": ["text/event-stream, application/json"],
            "User-Agent": ["ccproxy"],
        }
        if self.settings.openai_api_key:
            headers["Authorization"] = [f"Bearer {self.settings.openai_api_key}"]
        for name, value in extra.items():
            headers[name] = [value]
        return headers

    def post_chat(self, body: bytes, extra_headers: Mapping[str, str]) -> Deferred[IResponse]:
        """POST C{body} to C{/chat/completions}; fires with the response once headers arrive.

        The body is not buffered (C{unbuffered=True}): the caller streams it. Cancelling
        the Deferred before the headers aborts the connection; the caller owns the
        time limits (treq's own C{timeout} would be indistinguishable from a dropped
        connection).
        """
        if self.client is None:
            raise RuntimeError("Upstream.start() has not been called")
        result: Deferred[IResponse] = self.client.post(
            self.settings.chat_completions_url,
            data=body,
            headers=self.headers(extra_headers),
            unbuffered=True,
            allow_redirects=False,  # an API answers; a redirect would drop the POST body anyway
        )
        return result

"""Service assembly: C{makeService(settings)} -> a MultiService ready for twistd.

Nothing here does I/O at construction time: twistd builds the service before it forks,
so the upstream pool is created in C{startService} and ports are bound by the strports
service when the application starts.
"""

from __future__ import annotations

import gc
from typing import Any
from urllib.parse import urlsplit

from twisted.application import strports
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.server import Site

import ccproxy
from ccproxy.config import Settings
from ccproxy.logs import Stats
from ccproxy.providers import profile_for
from ccproxy.proxies import proxy_for
from ccproxy.routing import Router
from ccproxy.tokens import TokenCounter
from ccproxy.upstream import Upstream
from ccproxy.web.channel import CappedRequest, JSONChannel
from ccproxy.web.context import Context
from ccproxy.web.resources import build_root

__all__ = ["makeService", "QuietSite", "UpstreamService", "endpoint_description"]

_log = Logger()


class QuietSite(Site):
    """A Site without the per-request access log line (it halves throughput).

    ccproxy logs its own line per request instead. Its requests refuse bodies over
    C{max_request_bytes} before reading them, and its channel answers malformed HTTP in
    JSON (L{ccproxy.web.channel}).
    """

    # A plain HTTP/1.1 channel, not twisted's wrapper that can switch to HTTP/2: that
    # needs TLS, and ccproxy listens on plain TCP.
    protocol = JSONChannel  # type: ignore[assignment]
    requestFactory = CappedRequest
    max_request_bytes: int | None = None
    client_key: str | None = None
    body_timeout: float | None = None

    def log(self, request: Any) -> None:
        pass


class UpstreamService(Service):
    """Owns the upstream side: the pool is created on start; on stop, running exchanges
    get C{SHUTDOWN_GRACE} seconds to finish, then are closed with an error event, and
    the pool is closed."""

    def __init__(self, context: Context) -> None:
        self._context = context
        self._upstream = context.upstream
        self._settings = context.settings
        self._router = context.router
        self._provider = context.profile.name

    def startService(self) -> None:  # noqa: N802
        super().startService()
        self._upstream.start()
        settings = self._settings
        if not settings.listens_on_loopback and not settings.anthropic_api_key:
            _log.warn(
                "ccproxy listens on {host} without ANTHROPIC_API_KEY: anyone who can reach "
                "this port can spend your provider credits",
                host=settings.host,
            )
        if settings.log_mode == "simple":
            return  # simple mode: nothing but the per-request lines
        _log.info(
            "ccproxy {version} listening on http://{host}:{port} -> {upstream} "
            "(provider {provider}); routing {routing}",
            version=ccproxy.__version__,
            host=settings.host,
            port=settings.port,
            upstream=settings.upstream_host + _via_proxy(settings),
            provider=self._provider,
            routing=", ".join(f"{k}={v}" for k, v in self._router.table().items()),
        )

    def stopService(self) -> Deferred[None]:  # noqa: N802
        super().stopService()
        draining = self._drain()
        draining.addCallback(lambda _: self._upstream.stop())
        return draining

    def _drain(self) -> Deferred[None]:
        """Fire once no exchange is running, or after the grace period (closing the rest)."""
        context = self._context
        done: Deferred[None] = Deferred()
        deadline = context.clock.seconds() + self._settings.shutdown_grace

        def check() -> None:
            if not context.exchanges:
                done.callback(None)
            elif context.clock.seconds() >= deadline:
                for exchange in list(context.exchanges):
                    exchange.shut_down()
                done.callback(None)
            else:
                context.clock.callLater(0.05, check)

        if context.exchanges:
            _log.info("waiting for {count} running request(s) to finish", count=len(context.exchanges))
        check()
        return done


# Connections the kernel may hold for the reactor to accept (it caps the number at
# net.core.somaxconn). Twisted's default, 50, is less than what a burst of parallel requests
# (subagents, or a client's connection pool opening at once) brings: the kernel then drops
# the excess handshakes and the client retries them a second later.
LISTEN_BACKLOG = 1024


def endpoint_description(settings: Settings) -> str:
    """The strports description for the listening socket."""
    host = settings.host.replace(":", r"\:")
    return f"tcp:{settings.port}:interface={host}:backlog={LISTEN_BACKLOG}"


def build_context(settings: Settings, reactor: Any) -> Context:
    """Everything one running proxy shares."""
    return Context(
        settings=settings,
        router=Router.from_settings(settings),
        profile=profile_for(settings.openai_base_url, settings.provider),
        upstream=Upstream(settings, reactor),
        clock=reactor,
        stats=Stats(started=reactor.seconds()),
        # The exact tokenizer takes about a second to load: once, at start-up.
        tokens=TokenCounter.load(exact=settings.exact_tokens),
    )


def site_for(context: Context) -> Site:
    """The listening Site for C{context}."""
    # ccproxy reads JSON only: twisted need not parse form uploads into request.args.
    site = QuietSite(build_root(context), parsePOSTFormSubmission=False)
    site.displayTracebacks = False
    site.max_request_bytes = context.settings.max_request_bytes
    site.body_timeout = context.settings.request_body_timeout
    site.client_key = None if context.settings.passthrough_mode else context.settings.anthropic_api_key
    return site


def build_site(settings: Settings, reactor: Any) -> tuple[Site, Upstream, Router, str]:
    """The Site and its collaborators (shared by the tests and the benchmark)."""
    context = build_context(settings, reactor)
    return site_for(context), context.upstream, context.router, context.profile.name


# A proxied request allocates thousands of short-lived containers (the parsed body, its
# conversion, events): at the default threshold of 700 the collector ran several young
# collections per request, each also walking whatever else was young at the time.
GC_THRESHOLDS = (10_000, 10, 10)


def tune_garbage_collector() -> None:
    """Set the collector up for a long-running daemon, once its start-up objects exist.

    Everything alive now (modules, settings, the resource tree, the token counter's
    tables) lives as long as the process, so it is frozen out of every later collection;
    young collections run every 10,000 allocations. Measured in bench/ under 32-client
    load: 18-24 % less CPU per request.

    The collector is (re-)enabled here: start-up runs with it paused (L{ccproxy.tap} and
    the C{ccproxy start} launcher), because each full collection of the ~50,000 start-up
    objects cost 50-100 ms on the benchmark machine, several times per start. Nothing is
    collected before freezing for the same reason: the few thousand objects of start-up
    garbage (about 1 MB) are cheaper to keep than a collection that delays the port.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    gc.enable()


def makeService(settings: Settings, reactor: Any = None) -> MultiService:  # noqa: N802
    """The whole proxy as one service: the upstream pool plus the listening site."""
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    context = build_context(settings, reactor)
    top = MultiService()
    UpstreamService(context).setServiceParent(top)
    # Added last, stopped first: the port closes before running requests are drained.
    strports.service(endpoint_description(settings), site_for(context)).setServiceParent(top)
    return top


def _via_proxy(settings: Settings) -> str:
    """How the upstream is reached, when not directly (the proxy's credentials never shown)."""
    parts = urlsplit(settings.openai_base_url)
    proxy = proxy_for(parts.scheme, parts.hostname or "", settings.https_proxy, settings.no_proxy)
    return "" if proxy is None else f" via proxy {proxy.address}"

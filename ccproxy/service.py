"""Service assembly: C{makeService(settings)} -> a MultiService ready for twistd.

Nothing here does I/O at construction time: twistd builds the service before it forks,
so the upstream pool is created in C{startService} and ports are bound by the strports
service when the application starts.
"""

from __future__ import annotations

from typing import Any

from twisted.application import strports
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.server import Site

import ccproxy
from ccproxy.config import Settings
from ccproxy.providers import profile_for
from ccproxy.routing import Router
from ccproxy.upstream import Upstream
from ccproxy.logs import Stats
from ccproxy.web.context import Context
from ccproxy.web.resources import build_root

__all__ = ["makeService", "QuietSite", "UpstreamService", "endpoint_description"]

_log = Logger()


class QuietSite(Site):
    """A Site without the per-request access log line (it halves throughput).

    ccproxy logs its own line per request instead.
    """

    def log(self, request: Any) -> None:
        pass


class UpstreamService(Service):
    """Owns the upstream connection pool: created on start, closed on stop."""

    def __init__(self, upstream: Upstream, settings: Settings, router: Router, provider: str) -> None:
        self._upstream = upstream
        self._settings = settings
        self._router = router
        self._provider = provider

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
            upstream=settings.upstream_host,
            provider=self._provider,
            routing=", ".join(f"{k}={v}" for k, v in self._router.table().items()),
        )

    def stopService(self) -> Deferred[None]:  # noqa: N802
        super().stopService()
        return self._upstream.stop()


def endpoint_description(settings: Settings) -> str:
    """The strports description for the listening socket."""
    host = settings.host.replace(":", r"\:")
    return f"tcp:{settings.port}:interface={host}"


def build_site(settings: Settings, reactor: Any) -> tuple[Site, Upstream, Router, str]:
    """The Site and its collaborators (shared by the service and the tests)."""
    router = Router.from_settings(settings)
    profile = profile_for(settings.openai_base_url, settings.provider)
    upstream = Upstream(settings, reactor)
    context = Context(
        settings=settings,
        router=router,
        profile=profile,
        upstream=upstream,
        clock=reactor,
        stats=Stats(started=reactor.seconds()),
    )
    site = QuietSite(build_root(context))
    site.displayTracebacks = False
    return site, upstream, router, profile.name


def makeService(settings: Settings, reactor: Any = None) -> MultiService:  # noqa: N802
    """The whole proxy as one service: the upstream pool plus the listening site."""
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    site, upstream, router, provider = build_site(settings, reactor)
    top = MultiService()
    UpstreamService(upstream, settings, router, provider).setServiceParent(top)
    strports.service(endpoint_description(settings), site).setServiceParent(top)
    return top

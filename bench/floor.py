"""The floor: a bare twisted.web relay with no conversion, measured beside ccproxy.

C{python -m bench.floor --port 0 --upstream http://127.0.0.1:N/v1/chat/completions} prints
C{READY <port>}. Every POST is forwarded unchanged to the upstream through a pooled
C{Agent} (the same client set-up ccproxy uses), and every piece of the upstream body is
written to the client as it arrives, with no parsing at all. Access logging is off.

It is what the required stack (a twisted.web server and an Agent client in one CPython
process) costs by itself, so the benchmark can tell ccproxy's own cost from the
framework's: whatever ccproxy spends above this line is conversion and bookkeeping.
The bench sends it the direct (OpenAI) bodies. It stops after C{--max-seconds}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from ccproxy.upstream import BytesBody

__all__ = ["main", "static_server_command"]


def static_server_command(port: int, docroot: Path) -> list[str]:
    """The cold-start floor: twistd's own C{web} plugin serving C{docroot} on C{port}, launched
    the way C{ccproxy start} launches ccproxy. It imports what any twistd web service on
    this stack imports (twistd, twisted.web, endpoints with TLS) and nothing of ccproxy."""
    from ccproxy.daemon import TWISTD

    listen = f"tcp:{port}:interface=127.0.0.1"
    return [sys.executable, "-c", TWISTD, "-n", "--pidfile=", "web", "--listen", listen, "--path", str(docroot)]


class _Pipe(Protocol):
    """Writes each piece of the upstream body to the client at once."""

    def __init__(self, request: Request) -> None:
        self._request = request
        self._gone = False
        request.notifyFinish().addErrback(self._client_left)

    def _client_left(self, _: Failure) -> None:
        self._gone = True
        if self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if not self._gone:
            self._request.write(data)

    def connectionLost(self, reason: Failure | None = None) -> None:  # noqa: N802
        if not self._gone:
            self._request.finish()


class _Relay(Resource):
    isLeaf = True

    def __init__(self, agent: Agent, upstream: bytes) -> None:
        super().__init__()
        self._agent = agent
        self._upstream = upstream

    def render_POST(self, request: Request) -> Any:  # noqa: N802
        assert request.content is not None
        headers = Headers({b"content-type": [b"application/json"], b"accept": [b"text/event-stream"]})
        pending = self._agent.request(b"POST", self._upstream, headers, BytesBody(request.content.read()))

        def answer(response: Any) -> None:
            request.setResponseCode(response.code)
            request.setHeader(b"content-type", response.headers.getRawHeaders(b"content-type", [b"text/plain"])[0])
            response.deliverBody(_Pipe(request))

        def failed(reason: Failure) -> None:
            if not request.finished:
                request.setResponseCode(502)
                request.finish()

        pending.addCallbacks(answer, failed)
        return NOT_DONE_YET


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--upstream", required=True, help="the upstream's chat completions URL")
    parser.add_argument("--max-seconds", type=float, default=3600, help="stop after this long")
    args = parser.parse_args(argv)
    from twisted.internet import reactor  # here: bench.run imports this module for its commands

    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 64
    site = Site(_Relay(Agent(reactor, pool=pool), args.upstream.encode()))
    site.log = lambda request: None  # type: ignore[method-assign]
    port = reactor.listenTCP(args.port, site, interface="127.0.0.1")  # type: ignore[attr-defined]
    print(f"READY {port.getHost().port}", flush=True)
    reactor.callLater(args.max_seconds, reactor.stop)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

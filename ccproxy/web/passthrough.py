"""Passthrough mode: forward C{/v1/*} to an Anthropic-compatible API unchanged.

With C{PASSTHROUGH_MODE=true} the proxy converts nothing: method, path, query, body and
the client's own credentials go to C{ANTHROPIC_UPSTREAM_URL}, and the answer comes back
byte for byte, streamed through the same push-producer machinery as converted streams
(so back-pressure and cancellation behave the same). Useful to compare a provider with
real Claude from the same client, through the same logs.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import Agent
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from ccproxy.config import host_of
from ccproxy.errors import ApiError
from ccproxy.logs import RequestRecord, log_request
from ccproxy.upstream import BytesBody
from ccproxy.web.context import Context
from ccproxy.web.errors import write_error
from ccproxy.web.unreached import unreached

__all__ = ["Passthrough", "HOP_BY_HOP"]

# RFC 9110 7.6.1 connection-specific headers, plus the ones twisted.web sets itself.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
    }
)


@implementer(IPushProducer)
class _ByteRelay(Protocol):
    """Copies an upstream body to the client as it arrives, with back-pressure."""

    def __init__(self, request: Request) -> None:
        self._request = request
        self._gone = False
        self.done: Deferred[None] = Deferred()

    def connectionMade(self) -> None:  # noqa: N802
        self._request.registerProducer(self, True)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if not self._gone:
            self._request.write(data)

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:  # noqa: N802
        if self._request.channel is not None:
            self._request.unregisterProducer()
        if not self._gone:
            self._request.finish()
        self.done.callback(None)

    def pauseProducing(self) -> None:  # noqa: N802
        self.transport.pauseProducing()  # type: ignore[union-attr]

    def resumeProducing(self) -> None:  # noqa: N802
        self.transport.resumeProducing()  # type: ignore[union-attr]

    def stopProducing(self) -> None:  # noqa: N802
        self._gone = True
        self.transport.stopProducing()  # type: ignore[union-attr]


class Passthrough(Resource):
    """Every path under C{/v1}, forwarded as is."""

    isLeaf = True

    def __init__(self, context: Context, request_id: Any) -> None:
        super().__init__()
        self._context = context
        self._new_request_id = request_id

    def render(self, request: Request) -> int:
        rid = self._new_request_id(request)
        context = self._context
        settings = context.settings
        target = settings.anthropic_upstream_url.rstrip("/") + request.uri.decode("latin-1")
        headers = Headers()
        for name, values in request.requestHeaders.getAllRawHeaders():
            if name.lower() not in HOP_BY_HOP:
                headers.setRawHeaders(name, values)
        body = request.content.read() if request.content is not None else b""
        record = RequestRecord(rid, "passthrough", host_of(target), True, context.clock.seconds())
        # The converted path's agent: its pool, per-origin endpoints, read size and TLS
        # handshake deadline (L{ccproxy.upstream}); a plain one only while it is stopped.
        agent = context.upstream.agent or Agent(context.clock, connectTimeout=settings.connect_timeout)
        producer = BytesBody(body) if body else None
        pending: Deferred[IResponse] = agent.request(request.method, target.encode("latin-1"), headers, producer)
        finished = request.notifyFinish()

        def respond(response: IResponse) -> Deferred[None]:
            request.setResponseCode(response.code, response.phrase)
            for name, values in response.headers.getAllRawHeaders():
                if name.lower() not in HOP_BY_HOP:
                    request.responseHeaders.setRawHeaders(name, values)
            relay = _ByteRelay(request)
            response.deliverBody(relay)
            return relay.done

        def failed(reason: Failure) -> None:
            if not request.finished and request.channel is not None:
                message = f"cannot reach {target.split('/v1')[0]}: {unreached(reason).message}"
                write_error(request, ApiError(502, "api_error", message), rid)

        def ended(result: Any) -> None:
            if isinstance(result, Failure):
                record.outcome = "cancelled"
                pending.cancel()  # a no-op once it fired; aborts the request before then
            record.status = request.code
            record.ended = context.clock.seconds()
            log_request(record)

        pending.addCallbacks(respond, failed)
        pending.addErrback(lambda _: None)
        finished.addBoth(ended)
        return NOT_DONE_YET

"""One message exchange: post upstream, then relay or translate what comes back.

The client's response headers are held until the upstream's status is known, so an
upstream 429 or 5xx reaches Claude Code as the same status (with C{retry-after}) and
its own retry logic works. After a 200 the relay takes over.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IResponse
from twisted.web.server import Request

from ccproxy.convert.request import Conversion
from ccproxy.convert.stream import StreamConverter
from ccproxy.errors import ApiError, from_upstream
from ccproxy.ids import message_id
from ccproxy.openai import to_json
from ccproxy.logs import RequestRecord, debug_dump, log_request
from ccproxy.web.context import Context
from ccproxy.web.errors import write_error
from ccproxy.web.streaming import MessageSink, Relay, Sink, SSESink

__all__ = ["MessageExchange", "MAX_ERROR_BODY"]

_log = Logger()
MAX_ERROR_BODY = 256 * 1024


def _lower_headers(response: IResponse) -> dict[str, str]:
    return {
        name.decode("latin-1").lower(): values[-1].decode("latin-1")
        for name, values in response.headers.getAllRawHeaders()
        if values
    }


class _ErrorBody(Protocol):
    """Reads an upstream error body, keeping at most L{MAX_ERROR_BODY} bytes."""

    def __init__(self) -> None:
        self.done: Deferred[bytes] = Deferred()
        self._parts: list[bytes] = []
        self._size = 0

    def dataReceived(self, data: bytes) -> None:
        if self._size < MAX_ERROR_BODY:
            self._parts.append(data[: MAX_ERROR_BODY - self._size])
        self._size += len(data)
        if self._size >= MAX_ERROR_BODY:
            self.transport.stopProducing()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        if not self.done.called:
            self.done.callback(b"".join(self._parts))


class MessageExchange:
    """Runs one converted request against the upstream for one client request.

    It owns the request's L{RequestRecord}: whatever way the exchange ends (answer,
    upstream error, client gone), L{_ended} runs once and logs the request's line.
    """

    def __init__(
        self,
        request: Request,
        context: Context,
        conversion: Conversion,
        record: RequestRecord,
        input_estimate: int,
    ) -> None:
        self._request = request
        self._context = context
        self._conversion = conversion
        self._record = record
        self._input_estimate = input_estimate
        self._pending: Deferred[IResponse] | None = None
        self._relay: Relay | None = None
        self._client_gone = False
        self._logged = False
        self._provider = context.settings.upstream_host

    def start(self) -> None:
        """Send the upstream request; the client response follows asynchronously."""
        context = self._context
        context.stats.active += 1
        self._request.notifyFinish().addBoth(self._ended)
        body = to_json(self._conversion.request)
        if context.settings.debug:
            debug_dump("upstream request", self._record.request_id, body, context.settings.secrets)
        try:
            pending = context.upstream.post_chat(body, context.profile.headers(context.settings))
        except Exception:  # noqa: BLE001 - an unusable URL must still answer the client
            _log.failure("could not start the upstream request")
            self._fail(ApiError(502, "api_error", f"cannot reach upstream {self._provider}"))
            return
        self._pending = pending
        pending.addCallbacks(self._response, self._upstream_failed)
        pending.addErrback(self._bug)

    def _ended(self, result: Failure | None) -> None:
        """The client response is over (finished, or the connection was lost)."""
        if isinstance(result, Failure):
            self._client_gone = True
            if self._pending is not None and not self._pending.called:
                self._pending.cancel()
            if self._relay is not None:
                self._relay.cancel()
            self._record.outcome = "cancelled"
        record = self._record
        record.ended = self._context.clock.seconds()
        record.status = self._request.code
        stats = self._context.stats
        stats.active -= 1
        stats.requests += 1
        if record.outcome == "cancelled":
            stats.cancelled += 1
        elif record.outcome != "ok" or record.status >= 400:
            stats.errors += 1
            if record.outcome == "ok":
                record.outcome = "error"
        log_request(record)

    def _response(self, response: IResponse) -> None:
        self._pending = None
        if self._client_gone:
            response.deliverBody(_Discard())
            return
        headers = _lower_headers(response)
        if response.code != 200:
            collector = _ErrorBody()
            collector.done.addCallback(self._upstream_error, response.code, headers)
            response.deliverBody(collector)
            return
        settings = self._context.settings
        streaming = self._record.stream
        rid = self._record.request_id
        sink: Sink = SSESink(self._request, rid) if streaming else MessageSink(self._request, rid)
        converter = StreamConverter(
            model=self._record.client_model,
            message_id=message_id(),
            upstream_model=self._conversion.request.model,
            profile=self._context.profile.name,
            names=self._conversion.names,
            ids=self._conversion.ids,
            input_estimate=self._input_estimate,
            provider=self._provider,
        )
        self._relay = Relay(
            self._request,
            converter,
            sink,
            self._context.clock,
            self._record,
            streaming=streaming,
            ping_interval=settings.ping_interval,
            idle_timeout=settings.upstream_timeout,
            json_body="application/json" in headers.get("content-type", ""),
            debug_secrets=settings.secrets if settings.debug else None,
        )
        response.deliverBody(self._relay)

    def _upstream_error(self, body: bytes, status: int, headers: dict[str, str]) -> None:
        error = from_upstream(status, body, headers, self._provider, now=self._context.clock.seconds())
        self._record.error = f"upstream {status}"
        if self._context.settings.debug:
            debug_dump(f"upstream error {status}", self._record.request_id, body, self._context.settings.secrets)
        self._fail(error)

    def _upstream_failed(self, reason: Failure) -> None:
        self._pending = None
        if self._client_gone:
            return
        if reason.check(CancelledError):
            timeout = self._context.settings.upstream_timeout
            error = ApiError(504, "timeout_error", f"{self._provider}: no response within {timeout:g} s")
        else:
            error = ApiError(502, "api_error", f"cannot reach upstream {self._provider}: {reason.getErrorMessage()}")
        self._fail(error)

    def _fail(self, error: ApiError) -> None:
        self._record.error = self._record.error or error.message
        if not self._client_gone:
            write_error(self._request, error, self._record.request_id)

    def _bug(self, reason: Failure) -> None:
        _log.failure("request {request_id} failed inside ccproxy", reason, request_id=self._record.request_id)
        if not self._client_gone and not self._request.finished:
            self._fail(ApiError(500, "api_error", "internal error in ccproxy; see its log"))


class _Discard:
    """A body protocol that throws the body away (the client already left)."""

    def makeConnection(self, transport: Any) -> None:
        transport.stopProducing()

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure) -> None:
        pass

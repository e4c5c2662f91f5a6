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
from ccproxy.upstream import Upstream
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
    """Runs one converted request against the upstream for one client request."""

    def __init__(
        self,
        request: Request,
        request_id: str,
        conversion: Conversion,
        *,
        client_model: str,
        streaming: bool,
        upstream: Upstream,
        profile_name: str,
        extra_headers: dict[str, str],
        input_estimate: int,
        clock: Any,
        ping_interval: float,
        idle_timeout: float,
    ) -> None:
        self._request = request
        self._request_id = request_id
        self._conversion = conversion
        self._client_model = client_model
        self._streaming = streaming
        self._upstream = upstream
        self._profile_name = profile_name
        self._extra_headers = extra_headers
        self._input_estimate = input_estimate
        self._clock = clock
        self._ping_interval = ping_interval
        self._idle_timeout = idle_timeout
        self._pending: Deferred[IResponse] | None = None
        self._relay: Relay | None = None
        self._client_gone = False
        self._provider = upstream.settings.upstream_host

    def start(self) -> None:
        """Send the upstream request; the client response follows asynchronously."""
        self._request.notifyFinish().addErrback(self._client_lost)
        body = to_json(self._conversion.request)
        try:
            pending = self._upstream.post_chat(body, self._extra_headers)
        except Exception:  # noqa: BLE001 - an unusable URL must still answer the client
            _log.failure("could not start the upstream request")
            self._fail(ApiError(502, "api_error", f"cannot reach upstream {self._provider}"))
            return
        self._pending = pending
        pending.addCallbacks(self._response, self._upstream_failed)
        pending.addErrback(self._bug)

    def _client_lost(self, reason: Failure) -> None:
        self._client_gone = True
        if self._pending is not None and not self._pending.called:
            self._pending.cancel()
        if self._relay is not None:
            self._relay.cancel()
        _log.info("request {request_id} cancelled by the client", request_id=self._request_id)

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
        content_type = headers.get("content-type", "")
        sink: Sink = (
            SSESink(self._request, self._request_id)
            if self._streaming
            else MessageSink(self._request, self._request_id)
        )
        converter = StreamConverter(
            model=self._client_model,
            message_id=message_id(),
            upstream_model=self._conversion.request.model,
            profile=self._profile_name,
            names=self._conversion.names,
            ids=self._conversion.ids,
            input_estimate=self._input_estimate,
            provider=self._provider,
        )
        self._relay = Relay(
            self._request,
            converter,
            sink,
            self._clock,
            streaming=self._streaming,
            ping_interval=self._ping_interval,
            idle_timeout=self._idle_timeout,
            json_body="application/json" in content_type,
        )
        response.deliverBody(self._relay)

    def _upstream_error(self, body: bytes, status: int, headers: dict[str, str]) -> None:
        error = from_upstream(status, body, headers, self._provider, now=self._clock.seconds())
        _log.info(
            "request {request_id}: upstream answered {status}: {error}",
            request_id=self._request_id,
            status=status,
            error=str(error),
        )
        self._fail(error)

    def _upstream_failed(self, reason: Failure) -> None:
        self._pending = None
        if self._client_gone:
            return
        if reason.check(CancelledError):
            error = ApiError(
                504, "timeout_error", f"{self._provider}: no response within {self._upstream.settings.upstream_timeout:g} s"
            )
        else:
            error = ApiError(502, "api_error", f"cannot reach upstream {self._provider}: {reason.getErrorMessage()}")
        _log.info("request {request_id}: {error}", request_id=self._request_id, error=str(error))
        self._fail(error)

    def _fail(self, error: ApiError) -> None:
        if not self._client_gone:
            write_error(self._request, error, self._request_id)

    def _bug(self, reason: Failure) -> None:
        _log.failure("request {request_id} failed inside ccproxy", reason, request_id=self._request_id)
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

"""The HTTP edge below the resources: request bodies and malformed HTTP.

twisted.web reads a whole request body before any resource sees it (into a temporary
file from 100 kB on), and answers what its parser rejects with a bare C{400 Bad
Request} -- or, for a line over 16 KiB, by closing the connection without a word.
Claude Code reads every error as Anthropic JSON, so:

  - L{CappedRequest} refuses a body over C{MAX_REQUEST_BYTES} with 413
    C{request_too_large} as soon as its C{Content-Length} (or, chunked, its running
    size) says so, without reading it, and keeps the bodies it accepts in memory;
  - it answers 408 when a body takes longer than C{REQUEST_BODY_TIMEOUT} to arrive
    (slow-loris uploads), however steadily it drips;
  - it also refuses a C{/v1/} request without the client key (when one is configured)
    with 401 at the same moment, before reading its body;
  - L{JSONChannel} answers what the HTTP parser rejects with a JSON 400 (431 for
    oversized headers), then closes the connection as twisted does.

Both answer on the raw transport: at that point no request line may have been parsed,
so the usual L{Request} machinery cannot be used.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from twisted.web.http import RESPONSES, HTTPChannel
from twisted.web.server import Request

from ccproxy import jsonio
from ccproxy.errors import ApiError, error_payload
from ccproxy.ids import request_id
from ccproxy.logs import RequestRecord, log_request
from ccproxy.web.auth import UNAUTHORIZED, client_authorized

__all__ = ["CappedRequest", "JSONChannel", "raw_error"]

_REASONS = {431: b"Request Header Fields Too Large"}


def raw_error(error: ApiError, rid: str) -> bytes:
    """A whole HTTP/1.1 response carrying C{error}, announcing that the connection closes."""
    body = jsonio.dumps(error_payload(error, rid))
    reason = _REASONS.get(error.status) or RESPONSES.get(error.status, b"Error")
    lines = [
        b"HTTP/1.1 %d %s" % (error.status, reason),
        b"content-type: application/json",
        b"content-length: %d" % len(body),
        b"request-id: " + rid.encode(),
        b"connection: close",
    ]
    lines += [f"{name}: {value}".encode("latin-1") for name, value in error.headers.items()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _answer_and_close(channel: HTTPChannel, error: ApiError, now: float) -> None:
    """Send C{error} on C{channel}'s transport, log the request's line, close."""
    rid = request_id()
    if channel.transport is not None:
        channel.transport.write(raw_error(error, rid))
    log_request(RequestRecord(rid, "-", "-", False, now, error.status, "refused", ended=now, error=error.message))
    channel.loseConnection()


class CappedRequest(Request):
    """A request whose body may not exceed its site's C{max_request_bytes}.

    Twisted reports the declared length (L{gotLength}) once the headers are in, before
    any body byte is read: a length over the cap is answered there and then, and the
    connection closed, so a client that announces 10 GB costs nothing. A chunked body
    declares no length and is counted as it arrives instead.
    """

    _refused = False
    _received = 0
    _deadline: Any = None

    def _limit(self) -> int | None:
        limit: int | None = getattr(self._site(), "max_request_bytes", None)
        return limit

    def _site(self) -> Any:
        return getattr(self.channel, "site", None)

    def gotLength(self, length: int | None) -> None:  # noqa: N802
        site = self._site()
        path = getattr(self.channel, "_path", b"") or b""  # the request line, parsed already
        if path.startswith(b"/v1/") and not client_authorized(
            self.requestHeaders, getattr(site, "client_key", None)
        ):
            # The key is checked before a byte of the body is read: a stranger's request
            # costs neither memory nor parsing.
            self._refuse(UNAUTHORIZED)
            return
        limit = self._limit()
        if length is not None and limit is not None and length > limit:
            self._refuse(ApiError(413, "request_too_large", f"request body is {length} bytes; the limit is {limit}"))
            return
        # Bounded by the cap, so memory: no temporary file for bodies over 100 kB.
        self.content = BytesIO()
        seconds = getattr(site, "body_timeout", None)
        if seconds and length != 0:
            # A client that drips its body keeps resetting the idle timeout; this one
            # bounds the whole upload.
            self._deadline = site.reactor.callLater(seconds, self._too_slow, seconds)

    def _too_slow(self, seconds: float) -> None:
        self._deadline = None
        self._refuse(ApiError(408, "timeout_error", f"request body not received within {seconds:g} s"))

    def _stop_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def connectionLost(self, reason: Any) -> None:  # noqa: N802
        self._stop_deadline()
        super().connectionLost(reason)

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802
        if self._refused:
            return
        self._received += len(data)
        limit = self._limit()
        if limit is not None and self._received > limit:
            self._refuse(ApiError(413, "request_too_large", f"request body is over {limit} bytes, the limit"))
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:  # noqa: N802
        self._stop_deadline()
        if self._refused:
            return  # already answered; the connection is closing
        super().requestReceived(command, path, version)

    def _refuse(self, error: ApiError) -> None:
        self._stop_deadline()
        self._refused = True
        self.content = BytesIO()
        # No "100 Continue" after the answer: the client must not send the body.
        self.requestHeaders.removeHeader(b"expect")
        _answer_and_close(self.channel, error, self._site().reactor.seconds())


class JSONChannel(HTTPChannel):
    """An HTTP channel whose own error answers are Anthropic JSON.

    Twisted calls L{_respondToBadRequestAndDisconnect} for a malformed request line or
    header, a bad C{Content-Length} or C{Transfer-Encoding}, broken chunked encoding,
    and too many or too large headers; L{lineLengthExceeded} for one line over
    C{MAX_LENGTH} (16 KiB).
    """

    # Reads larger than this are split at the end of the header block (see dataReceived).
    _SPLIT_READS_OVER = 8192
    _local_address: Any = None

    def getHost(self) -> Any:  # noqa: N802
        """This end's address, asked of the socket once per connection.

        Every Request asks for it when it is created, and TCP's getHost is a
        C{getsockname} system call each time; a connection's own address never changes.
        """
        if self._local_address is None:
            self._local_address = super().getHost()
        return self._local_address

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        """Hand the header block over on its own when a large body arrived in the same read.

        LineReceiver takes one line at a time with C{buffer.split(delimiter, 1)}, copying
        the rest of its buffer per line: a Claude Code request (some fifteen headers, then
        a body of tens of KB in the same read) had its body copied once per header. Two
        calls are what two TCP reads would have been, so nothing else changes.
        """
        if self.line_mode and len(data) > self._SPLIT_READS_OVER and not self._buffer:
            end = data.find(b"\r\n\r\n", 0, self.totalHeadersSize + 4)
            if 0 <= end and end + 4 < len(data):
                super().dataReceived(data[: end + 4])
                data = data[end + 4 :]
        super().dataReceived(data)

    def _respondToBadRequestAndDisconnect(self) -> None:  # noqa: N802
        if self._receivedHeaderSize > self.totalHeadersSize or self._receivedHeaderCount > self.maxHeaders:
            error = ApiError(
                431,
                "invalid_request_error",
                f"request headers exceed {self.maxHeaders} fields or {self.totalHeadersSize} bytes",
            )
        else:
            error = ApiError(400, "invalid_request_error", "malformed HTTP request")
        _answer_and_close(self, error, self.factory.reactor.seconds())

    def lineLengthExceeded(self, line: bytes) -> None:  # noqa: N802
        message = f"request line or header field longer than {self.MAX_LENGTH} bytes"
        _answer_and_close(self, ApiError(431, "invalid_request_error", message), self.factory.reactor.seconds())

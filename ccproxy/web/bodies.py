"""Upstream response bodies that are not relayed: error bodies and abandoned answers."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.iweb import IResponse

__all__ = ["ErrorBody", "Discard", "lower_headers", "MAX_ERROR_BODY"]

MAX_ERROR_BODY = 256 * 1024


def lower_headers(response: IResponse) -> dict[str, str]:
    """The response's headers by lower-case name (the last value of each)."""
    return {
        name.decode("latin-1").lower(): values[-1].decode("latin-1")
        for name, values in response.headers.getAllRawHeaders()
        if values
    }


class ErrorBody(Protocol):
    """Reads an upstream error body, keeping at most L{MAX_ERROR_BODY} bytes."""

    def __init__(self) -> None:
        self.done: Deferred[bytes] = Deferred()
        self._parts: list[bytes] = []
        self._size = 0

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if self._size < MAX_ERROR_BODY:
            self._parts.append(data[: MAX_ERROR_BODY - self._size])
        self._size += len(data)
        if self._size >= MAX_ERROR_BODY:
            self.transport.stopProducing()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:  # noqa: N802
        if not self.done.called:
            self.done.callback(b"".join(self._parts))


class Discard(Protocol):
    """A body protocol that throws the body away (the client already left)."""

    def connectionMade(self) -> None:  # noqa: N802
        self.transport.stopProducing()  # type: ignore[union-attr]

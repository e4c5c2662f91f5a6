"""Why a request never got an answer from the upstream: words for the client, and whether
trying again can help.

Twisted's HTTP client wraps the cause of such a failure in C{ResponseNeverReceived} (or
C{RequestTransmissionFailed}), whose own message is the repr of a list of Failures; a TLS
failure's cause is OpenSSL's error queue. Claude Code shows the message to the user, so
it names the cause, and for the usual mistakes the fix: a private CA is trusted with
C{SSL_CERT_FILE}, and an C{https://} URL for a plain HTTP server (a local Ollama) fails
the handshake at once.

A refused, reset or stale connection, or a handshake that took too long, is retried (the
exchange decides how often); a certificate or handshake failure is not, since it would
fail the same way again.
"""

from __future__ import annotations

from typing import Any

from attrs import frozen
from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet.error import ConnectError, ConnectionLost
from twisted.python.failure import Failure
from twisted.web._newclient import RequestNotSent  # not re-exported by twisted.web.client
from twisted.web.client import RequestTransmissionFailed, ResponseFailed, ResponseNeverReceived

from ccproxy.tunnel import TunnelError

__all__ = ["Unreached", "unreached"]

_TRANSIENT = (ConnectError, ConnectionLost, ResponseNeverReceived, RequestNotSent, RequestTransmissionFailed)
_WRAPPERS = (ResponseNeverReceived, RequestTransmissionFailed, ResponseFailed)

# What OpenSSL says when the other side does not speak TLS at all.
_NOT_TLS = ("wrong version number", "packet length too long", "record layer failure", "http request")


@frozen
class Unreached:
    """A failed upstream request: C{message} for the client and the log, and whether it is
    C{transient} (worth another try)."""

    message: str
    transient: bool


def unreached(reason: Failure) -> Unreached:
    """Describe the failure of an upstream request that got no response."""
    causes = _causes(reason)
    for cause in causes:
        if isinstance(cause.value, TunnelError):
            return Unreached(str(cause.value), transient=cause.value.transient)
        if cause.check(SSL.Error):
            return Unreached(_tls_message(cause.value), transient=False)
        if cause.check(VerificationError):
            return Unreached("its TLS certificate is not valid for this host name", transient=False)
    message = "; ".join(dict.fromkeys(_said(cause) for cause in causes))
    # A HandshakeTimeout (ccproxy.upstream) comes inside ResponseNeverReceived: transient like any lost connection.
    return Unreached(message, transient=reason.check(*_TRANSIENT) is not None)


def _said(cause: Failure) -> str:
    if cause.check(RequestNotSent):  # raised without a message
        return "the connection closed before the request was sent"
    return cause.getErrorMessage() or type(cause.value).__name__


def _causes(reason: Failure) -> list[Failure]:
    """The Failures inside Twisted's wrapper exceptions, or the failure itself."""
    if reason.check(*_WRAPPERS):
        inner = [cause for cause in getattr(reason.value, "reasons", []) if isinstance(cause, Failure)]
        if inner:
            return inner
    return [reason]


def _tls_message(error: Any) -> str:
    """OpenSSL's last word on a failed handshake (its error queue is earliest first), with
    the likely fix where there is one."""
    queue = error.args[0] if error.args and isinstance(error.args[0], list) else []
    words = [str(entry[-1]) for entry in queue if isinstance(entry, tuple) and entry and entry[-1]]
    said = words[-1] if words else str(error) or "unknown error"
    message = f"TLS handshake failed: {said}"
    if "certificate verify failed" in said:
        return message + " (the server's certificate is not trusted; SSL_CERT_FILE names a private CA's bundle)"
    if any(sign in said for sign in _NOT_TLS):
        return message + " (the server does not speak TLS: is the URL http:// rather than https://?)"
    return message

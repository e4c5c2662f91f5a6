"""How a request that got no upstream response is described, and whether it is retried."""

from __future__ import annotations

import pytest
from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet.error import ConnectionLost, ConnectionRefusedError, TCPTimedOutError
from twisted.python.failure import Failure
from twisted.web._newclient import RequestNotSent
from twisted.web.client import RequestTransmissionFailed, ResponseNeverReceived

from ccproxy.upstream import HandshakeTimeout
from ccproxy.web.unreached import unreached


def tls_error(*reasons: str) -> SSL.Error:
    """An OpenSSL error queue as pyOpenSSL raises it: (library, function, reason), earliest first."""
    return SSL.Error([("SSL routines", "", reason) for reason in reasons])


def never_received(*causes: BaseException) -> Failure:
    return Failure(ResponseNeverReceived([Failure(cause) for cause in causes]))


@pytest.mark.parametrize(
    "reason",
    [
        Failure(ConnectionRefusedError()),
        Failure(TCPTimedOutError()),
        Failure(RequestNotSent()),
        never_received(ConnectionLost()),
        Failure(RequestTransmissionFailed([Failure(ConnectionLost())])),
    ],
    ids=["refused", "timed out", "not sent", "stale connection", "lost while sending"],
)
def test_connection_failures_are_transient_and_say_what_happened(reason: Failure) -> None:
    found = unreached(reason)
    assert found.transient
    assert "Failure" not in found.message and "[" not in found.message  # no repr of Twisted's wrappers
    assert found.message


def test_the_cause_inside_twisteds_wrapper_is_the_message() -> None:
    found = unreached(never_received(ConnectionLost(), ConnectionLost()))
    assert found.message == Failure(ConnectionLost()).getErrorMessage()  # said once


def test_untrusted_certificate_is_final_and_names_the_fix() -> None:
    found = unreached(never_received(tls_error("EVP lib", "certificate verify failed")))
    assert not found.transient
    assert found.message.startswith("TLS handshake failed: certificate verify failed (")
    assert "SSL_CERT_FILE" in found.message


@pytest.mark.parametrize("said", ["wrong version number", "packet length too long", "record layer failure"])
def test_a_server_without_tls_is_final_and_names_the_fix(said: str) -> None:
    found = unreached(Failure(tls_error(said)))
    assert not found.transient
    assert found.message == f"TLS handshake failed: {said} (the server does not speak TLS: is the URL http:// rather than https://?)"


def test_other_handshake_failures_say_openssls_last_word() -> None:
    found = unreached(never_received(tls_error("unsupported protocol", "sslv3 alert handshake failure")))
    assert (found.message, found.transient) == ("TLS handshake failed: sslv3 alert handshake failure", False)
    assert unreached(Failure(SSL.Error([]))).message.startswith("TLS handshake failed: ")


def test_certificate_for_another_name_is_final() -> None:
    found = unreached(never_received(VerificationError(errors=[])))
    assert (found.message, found.transient) == ("its TLS certificate is not valid for this host name", False)


def test_anything_else_is_not_retried() -> None:
    found = unreached(Failure(ValueError("a bug")))
    assert (found.message, found.transient) == ("a bug", False)


def test_a_handshake_cut_at_the_connect_timeout_is_transient() -> None:
    found = unreached(never_received(HandshakeTimeout(10)))
    assert (found.message, found.transient) == ("the TLS handshake did not finish within 10 s (CONNECT_TIMEOUT)", True)

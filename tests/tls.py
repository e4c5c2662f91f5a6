"""A throwaway certificate authority for tests of the https upstream path.

Real providers are all https, so the tests run the scripted upstream behind TLS too: a CA
made per test run, and a server certificate for C{127.0.0.1} it signed. ccproxy trusts the
CA the way an operator makes it trust a private one, with C{SSL_CERT_FILE} (OpenSSL's
default verify paths, which Twisted's C{platformTrust} uses).
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from attrs import field, frozen
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLContextFactory
from zope.interface import implementer

__all__ = ["Authority", "make_authority"]


@implementer(IOpenSSLContextFactory)
@frozen
class Authority:
    """The files of a test CA: C{ca_file} to trust, C{server_pem} (key and certificate) to serve."""

    ca_file: Path
    server_pem: Path
    _context: list[SSL.Context] = field(factory=list, init=False, eq=False, repr=False)

    def getContext(self) -> SSL.Context:  # noqa: N802 (what listenSSL calls)
        """The server's TLS context, as C{127.0.0.1}: loaded by OpenSSL from the PEM file
        (Twisted's C{CertificateOptions} would pass it deprecated pyOpenSSL objects)."""
        if not self._context:
            context = SSL.Context(SSL.TLS_SERVER_METHOD)
            context.use_certificate_chain_file(str(self.server_pem))
            context.use_privatekey_file(str(self.server_pem))
            self._context.append(context)
        return self._context[0]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_authority(directory: Path, names: tuple[str, ...] = ()) -> Authority:
    """A CA and a server certificate for the address 127.0.0.1 and the host C{names},
    written under C{directory}."""
    now = datetime.datetime.now(datetime.timezone.utc)
    valid = {"not_valid_before": now - datetime.timedelta(hours=1), "not_valid_after": now + datetime.timedelta(days=1)}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder(**valid)
        .subject_name(_name("ccproxy test CA"))
        .issuer_name(_name("ccproxy test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder(**valid)
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), *(x509.DNSName(name) for name in names)]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server_pem = directory / "server.pem"
    key_pem = server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    server_pem.write_bytes(key_pem + server.public_bytes(serialization.Encoding.PEM))
    return Authority(ca_file, server_pem)

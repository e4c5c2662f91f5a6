"""Which upstream connections go through an HTTP proxy (C{HTTPS_PROXY}, C{NO_PROXY}).

Corporate networks often let traffic out only through an HTTP proxy, and name it the way
curl, pip and Claude Code read it: C{HTTPS_PROXY=http://[user:password@]host:port}, with
C{NO_PROXY} listing the hosts to reach directly. ccproxy reads the same variables (either
case) for its https upstreams, which it then reaches through a CONNECT tunnel
(L{ccproxy.tunnel}). Plain C{http://} upstreams, local servers in practice, are always
reached directly, and so are loopback addresses and C{localhost}.

Pure: parsing and matching only, so the configuration can reject a bad value at start-up.
"""

from __future__ import annotations

import base64
import ipaddress
from urllib.parse import unquote, urlsplit

from attrs import frozen

__all__ = ["Proxy", "NoProxy", "ProxyError", "proxy_for"]


class ProxyError(ValueError):
    """A proxy variable that cannot be used; the message says why."""


@frozen
class Proxy:
    """An HTTP proxy that tunnels with CONNECT.

    @ivar authorization: the C{Proxy-Authorization} value for the URL's credentials.
    """

    host: str
    port: int
    authorization: bytes | None = None

    @classmethod
    def parse(cls, url: str) -> Proxy:
        """The proxy named by C{url}; a bare C{host:port} means C{http://host:port}."""
        text = url.strip()
        parts = urlsplit(text if "://" in text else "http://" + text)
        if parts.scheme != "http":
            raise ProxyError(f"{parts.scheme}:// proxies are not supported; name an http:// proxy (it tunnels https)")
        try:
            port = parts.port or 80
        except ValueError:
            raise ProxyError(f"{text!r} has no valid port") from None
        if not parts.hostname:
            raise ProxyError(f"{text!r} names no host")
        authorization = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            authorization = b"Basic " + base64.b64encode(pair)
        return cls(parts.hostname, port, authorization)

    @property
    def address(self) -> str:
        """C{host:port}, safe to log (never the credentials)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@frozen
class NoProxy:
    """The hosts reached directly: C{NO_PROXY}'s comma-separated names (each also covering
    its subdomains, with or without a leading dot), addresses, networks (C{10.0.0.0/8})
    or C{*}. A C{:port} after an entry is ignored."""

    names: tuple[str, ...] = ()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    everything: bool = False

    @classmethod
    def parse(cls, text: str) -> NoProxy:
        names: list[str] = []
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        everything = False
        for raw in text.split(","):
            entry = raw.strip().lower()
            if not entry:
                continue
            if entry == "*":
                everything = True
                continue
            network = _network(entry)
            if network is not None:
                networks.append(network)
                continue
            names.append(entry.rsplit(":", 1)[0].lstrip(".") if entry.count(":") == 1 else entry.lstrip("."))
        return cls(tuple(names), tuple(networks), everything)

    def bypasses(self, host: str) -> bool:
        """Whether C{host} is reached directly (always for loopback and C{localhost})."""
        host = host.lower().strip("[]").rstrip(".")
        if self.everything or host == "localhost" or host.endswith(".localhost"):
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return any(host == name or host.endswith("." + name) for name in self.names)
        return address.is_loopback or any(address in network for network in self.networks) or host in self.names


def _network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """C{entry} as an address or network, with a port or brackets dropped; else C{None}."""
    candidate = entry
    if candidate.startswith("["):  # [::1] or [::1]:8080
        candidate = candidate[1:].split("]", 1)[0]
    elif candidate.count(":") == 1:  # 10.0.0.1:8080
        candidate = candidate.split(":", 1)[0]
    try:
        return ipaddress.ip_network(candidate, strict=False)
    except ValueError:
        return None


def proxy_for(scheme: str, host: str, proxy: Proxy | None, no_proxy: NoProxy) -> Proxy | None:
    """The proxy an upstream at C{scheme://host} is reached through, or C{None} for directly:
    only https goes through one, and only when C{no_proxy} does not exempt the host."""
    if scheme != "https" or proxy is None or no_proxy.bypasses(host):
        return None
    return proxy

"""HTTPS_PROXY and NO_PROXY: parsed as curl and pip read them, checked at start-up."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from ccproxy.config import ConfigError, Settings
from ccproxy.config import load_settings as load_from
from ccproxy.proxies import NoProxy, Proxy, ProxyError


def load_settings(environ: dict[str, str]) -> Settings:
    """Settings from C{environ} alone: no ./.env or ~/.claude/proxy.env of this machine."""
    nowhere = Path("/nonexistent")
    return load_from(environ, cwd=nowhere, home=nowhere)


def test_proxy_url_with_credentials() -> None:
    proxy = Proxy.parse("http://me%40corp:p%3Ass@proxy.corp:3128/")
    assert (proxy.host, proxy.port) == ("proxy.corp", 3128)
    assert proxy.authorization == b"Basic " + base64.b64encode(b"me@corp:p:ss")
    assert proxy.address == "proxy.corp:3128"  # what logs show: never the credentials


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [("proxy.corp:8080", "proxy.corp", 8080), ("http://10.0.0.1", "10.0.0.1", 80), (" http://[::1]:3128 ", "::1", 3128)],
)
def test_proxy_url_forms(url: str, host: str, port: int) -> None:
    proxy = Proxy.parse(url)
    assert (proxy.host, proxy.port, proxy.authorization) == (host, port, None)


@pytest.mark.parametrize(
    ("url", "says"),
    [("https://proxy.corp:443", "https:// proxies are not supported"), ("socks5://p:1080", "socks5:// proxies"),
     ("http://proxy.corp:port", "has no valid port"), ("http://:3128", "names no host")],
)
def test_unusable_proxy_urls(url: str, says: str) -> None:
    with pytest.raises(ProxyError, match=says):
        Proxy.parse(url)


def test_ipv6_proxy_address_is_bracketed() -> None:
    assert Proxy.parse("http://[fd00::1]:3128").address == "[fd00::1]:3128"


@pytest.mark.parametrize(
    ("host", "bypassed"),
    [
        ("internal.corp", True),  # the name itself
        ("llm.internal.corp", True),  # and its subdomains
        ("notinternal.corp", False),
        ("example.org", True),  # listed with a leading dot and a port
        ("api.example.org", True),
        ("10.2.3.4", True),  # in a listed network
        ("11.2.3.4", False),
        ("192.168.1.5", True),  # a listed address with a port
        ("fd00::7", True),
        ("api.openai.com", False),
        ("127.0.0.1", True),  # loopback and localhost: always direct
        ("::1", True),
        ("localhost", True),
        ("LOCALHOST.", True),
    ],
)
def test_no_proxy_matching(host: str, bypassed: bool) -> None:
    rules = NoProxy.parse(" internal.corp, .example.org:443,10.0.0.0/8, 192.168.1.5:8080 ,[fd00::7],,")
    assert rules.bypasses(host) is bypassed


def test_no_proxy_star_and_empty() -> None:
    assert NoProxy.parse("*").bypasses("api.openai.com")
    assert not NoProxy.parse("").bypasses("api.openai.com")


def test_settings_read_both_cases_and_lower_case_wins() -> None:
    settings = load_settings({"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:2", "NO_PROXY": "a.corp"})
    assert settings.https_proxy == Proxy("lower", 2)
    assert settings.no_proxy.bypasses("x.a.corp")
    assert load_settings({"HTTPS_PROXY": ""}).https_proxy is None
    assert load_settings({}).https_proxy is None


def test_a_bad_proxy_stops_start_up_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="^HTTPS_PROXY: https:// proxies are not supported"):
        load_settings({"https_proxy": "https://proxy.corp"})
    with pytest.raises(ConfigError, match="^NO_PROXY: contains a line break"):
        load_settings({"NO_PROXY": "a.corp\nb.corp"})


def test_the_start_up_line_names_the_proxy_but_not_its_credentials(log_events: list[dict[str, Any]]) -> None:
    from twisted.internet import reactor
    from twisted.logger import formatEvent

    from ccproxy.service import UpstreamService, build_context

    settings = Settings(https_proxy=Proxy.parse("http://me:s3cret@proxy.corp:3128"), no_proxy=NoProxy.parse("other.corp"))
    service = UpstreamService(build_context(settings, reactor))
    service.startService()
    service.stopService()
    (line,) = [formatEvent(e) for e in log_events if "listening on" in str(e.get("log_format"))]
    assert "-> api.openai.com via proxy proxy.corp:3128 (provider" in line
    assert "s3cret" not in line and "me:" not in line

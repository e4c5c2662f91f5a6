"""Settings: one frozen object built once at start-up.

Sources, highest priority first:
  1. explicit overrides (twistd / CLI options such as C{--port});
  2. the process environment;
  3. the file named by C{--env-file}, if any;
  4. C{./.env} in the working directory;
  5. C{~/.claude/proxy.env}.

A bad value raises L{ConfigError} whose message names the variable, so start-up can stop
with one line instead of a traceback.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Callable, TypeVar
from urllib.parse import urlsplit

from attrs import field, frozen
from dotenv import dotenv_values

from ccproxy.models import ModelInfo, parse_model_limits
from ccproxy.proxies import NoProxy, Proxy, ProxyError

__all__ = ["ConfigError", "Settings", "load_settings", "config_files", "host_of"]

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the variable."""


@frozen
class Settings:
    """Everything the proxy reads from its configuration. See L{load_settings}."""

    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: str | None = None
    opus_model: str = "gpt-5"
    sonnet_model: str = "gpt-5"
    haiku_model: str = "gpt-5-mini"
    openrouter_app_name: str | None = None
    openrouter_app_url: str | None = None
    anthropic_api_key: str | None = None
    host: str = "127.0.0.1"
    port: int = 8082
    passthrough_mode: bool = False
    connect_timeout: float = 10.0
    upstream_timeout: float = 600.0
    ping_interval: float = 15.0
    max_request_bytes: int = 32 * 1024 * 1024
    log_mode: str = "default"
    provider: str | None = None
    anthropic_upstream_url: str = "https://api.anthropic.com"
    insecure_no_auth: bool = False
    shutdown_grace: float = 10.0
    exact_tokens: bool = False
    request_body_timeout: float = 120.0
    model_limits: Mapping[str, ModelInfo] = field(factory=dict)
    upstream_retries: int = 2
    retry_max_wait: float = 10.0
    retry_backoff: float = 0.5
    https_proxy: Proxy | None = None
    no_proxy: NoProxy = field(factory=NoProxy)

    @property
    def debug(self) -> bool:
        """Whether full, redacted request and stream dumps are logged."""
        return self.log_mode == "debug"

    @property
    def secrets(self) -> tuple[str | None, ...]:
        """Values that must never appear in a log line."""
        return (self.openai_api_key, self.anthropic_api_key)

    @cached_property
    def upstream_host(self) -> str:
        """Host (and port) of the upstream, safe to show: never carries credentials.

        Kept once computed: every request names it in its errors and log line.
        """
        return host_of(self.openai_base_url)

    @property
    def chat_completions_url(self) -> str:
        """The upstream Chat Completions endpoint."""
        return self.openai_base_url.rstrip("/") + "/chat/completions"

    @property
    def listens_on_loopback(self) -> bool:
        """Whether C{host} only accepts connections from this machine."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def host_of(url: str) -> str:
    """The host (and explicit port) of C{url}."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{host}:{parts.port}" if parts.port else host


def config_files(
    env_file: str | None = None, cwd: Path | None = None, home: Path | None = None
) -> list[Path]:
    """The configuration files in priority order (highest first)."""
    files = [Path(env_file)] if env_file else []
    files.append((cwd or Path.cwd()) / ".env")
    files.append((home or Path.home()) / ".claude" / "proxy.env")
    return files


def _merged_sources(
    environ: Mapping[str, str], files: list[Path], explicit: str | None
) -> dict[str, str]:
    merged: dict[str, str] = {}
    for path in reversed(files):
        if path.is_file():
            values = dotenv_values(path)
            merged.update({k: v for k, v in values.items() if v is not None})
        elif explicit is not None and str(path) == explicit:
            raise ConfigError(f"--env-file: {explicit} does not exist")
    merged.update(environ)
    return merged


def _url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name}: {value!r} is not an http(s) URL")
    if parts.username or parts.password:
        raise ConfigError(f"{name}: put credentials in OPENAI_API_KEY, not in the URL")
    return value


def _port(name: str, value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise ConfigError(f"{name}: {value!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{name}: {port} is outside 0-65535")
    return port


def _bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}: {value!r} is not a boolean (use true or false)")


def _number(kind: Callable[[str], T], label: str, zero_allowed: bool) -> Callable[[str, str], T]:
    """A parser for numbers of C{kind} that must be positive (or zero, when allowed)."""

    def parse(name: str, value: str) -> T:
        try:
            number = kind(value)
        except ValueError:
            raise ConfigError(f"{name}: {value!r} is not {label}") from None
        if not (number >= 0 if zero_allowed else number > 0):  # type: ignore[operator]
            bound = "0 or more" if zero_allowed else "greater than 0"
            raise ConfigError(f"{name}: must be {bound}, got {value!r}")
        return number

    return parse


_positive_float = _number(float, "a number", zero_allowed=False)
_seconds = _number(float, "a number", zero_allowed=True)
_positive_int = _number(int, "an integer", zero_allowed=False)
_count = _number(int, "an integer", zero_allowed=True)


def _provider(name: str, value: str) -> str | None:
    from ccproxy.providers import PROFILES

    chosen = value.strip().lower()
    if chosen and chosen not in PROFILES:
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(sorted(PROFILES))}")
    return chosen or None


def _model_limits(name: str, value: str) -> dict[str, ModelInfo]:
    try:
        return parse_model_limits(value)
    except ValueError as error:
        raise ConfigError(f"{name}: {error}") from None


def _log_mode(name: str, value: str) -> str:
    mode = value.strip().lower() or "default"
    if mode not in ("default", "simple", "debug"):
        raise ConfigError(f"{name}: {value!r} is not one of default, simple, debug")
    return mode


def _text(name: str, value: str) -> str | None:
    stripped = value.strip()
    if any(c in stripped for c in "\r\n\0"):
        raise ConfigError(f"{name}: contains a line break or NUL")
    return stripped or None


def _required_text(name: str, value: str) -> str:
    text = _text(name, value)
    if text is None:
        raise ConfigError(f"{name}: must not be empty")
    return text


def _proxy(name: str, value: str) -> Proxy | None:
    if not value.strip():
        return None
    try:
        return Proxy.parse(value)
    except ProxyError as error:
        raise ConfigError(f"{name}: {error}") from None


def _no_proxy(name: str, value: str) -> NoProxy:
    _text(name, value)  # no line breaks
    return NoProxy.parse(value)


# variable name -> (Settings field, parser)
_VARIABLES: dict[str, tuple[str, Callable[[str, str], object]]] = {
    "OPENAI_BASE_URL": ("openai_base_url", _url),
    "OPENAI_API_KEY": ("openai_api_key", _text),
    "ANTHROPIC_DEFAULT_OPUS_MODEL": ("opus_model", _required_text),
    "ANTHROPIC_DEFAULT_SONNET_MODEL": ("sonnet_model", _required_text),
    "ANTHROPIC_DEFAULT_HAIKU_MODEL": ("haiku_model", _required_text),
    "OPENROUTER_APP_NAME": ("openrouter_app_name", _text),
    "OPENROUTER_APP_URL": ("openrouter_app_url", _text),
    "ANTHROPIC_API_KEY": ("anthropic_api_key", _text),
    "HOST": ("host", _required_text),
    "PORT": ("port", _port),
    "PASSTHROUGH_MODE": ("passthrough_mode", _bool),
    "CONNECT_TIMEOUT": ("connect_timeout", _positive_float),
    "UPSTREAM_TIMEOUT": ("upstream_timeout", _positive_float),
    "PING_INTERVAL": ("ping_interval", _positive_float),
    "MAX_REQUEST_BYTES": ("max_request_bytes", _positive_int),
    "LOG_MODE": ("log_mode", _log_mode),
    "PROVIDER": ("provider", _provider),
    "ANTHROPIC_UPSTREAM_URL": ("anthropic_upstream_url", _url),
    "INSECURE_NO_AUTH": ("insecure_no_auth", _bool),
    "SHUTDOWN_GRACE": ("shutdown_grace", _seconds),
    "EXACT_TOKENS": ("exact_tokens", _bool),
    "REQUEST_BODY_TIMEOUT": ("request_body_timeout", _positive_float),
    "MODEL_LIMITS": ("model_limits", _model_limits),
    "UPSTREAM_RETRIES": ("upstream_retries", _count),
    "RETRY_MAX_WAIT": ("retry_max_wait", _seconds),
    "RETRY_BACKOFF": ("retry_backoff", _seconds),
    "HTTPS_PROXY": ("https_proxy", _proxy),
    "NO_PROXY": ("no_proxy", _no_proxy),
}
# Proxy variables are also read in lower case, which wins, as curl and pip have it.
_LOWER_CASE = ("HTTPS_PROXY", "NO_PROXY")

VARIABLES = tuple(_VARIABLES)


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    env_file: str | None = None,
    overrides: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    home: Path | None = None,
) -> Settings:
    """Build L{Settings} from overrides, the environment and the config files.

    @param overrides: values keyed by variable name (C{"PORT"}) that beat every other
        source; twistd options arrive here.
    @raise ConfigError: a value is invalid.
    """
    files = config_files(env_file, cwd, home)
    merged = _merged_sources(os.environ if environ is None else environ, files, env_file)
    merged.update(overrides or {})
    for name in _LOWER_CASE:
        if name.lower() in merged:
            merged[name] = merged[name.lower()]
    values: dict[str, object] = {}
    for name, (attribute, parse) in _VARIABLES.items():
        raw = merged.get(name)
        if raw is not None:
            values[attribute] = parse(name, raw)
    settings = Settings(**values)  # type: ignore[arg-type]
    if not settings.listens_on_loopback and not settings.anthropic_api_key and not settings.insecure_no_auth:
        raise ConfigError(
            f"HOST: {settings.host} is reachable from other machines, so set ANTHROPIC_API_KEY "
            "(clients must then send it) or, to accept anyone, --insecure-no-auth"
        )
    return settings

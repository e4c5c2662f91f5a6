"""The twistd plugin's options and service factory (C{twistd ccproxy --port 8082})."""

from __future__ import annotations

import gc
from typing import Any

from twisted.application.service import IService
from twisted.python import usage

from ccproxy.config import ConfigError, Settings, load_settings

__all__ = ["Options", "makeService"]


# The options that set a variable, validated as the variable is.
_VARIABLES = {
    "port": "PORT",
    "host": "HOST",
    "connect-timeout": "CONNECT_TIMEOUT",
    "upstream-timeout": "UPSTREAM_TIMEOUT",
    "ping-interval": "PING_INTERVAL",
}


class Options(usage.Options):
    """Command-line options; each overrides the matching environment variable."""

    synopsis = "[--port PORT] [--host HOST] [--env-file PATH] [--debug] [--simple]"
    longdesc = (
        "Serve the Anthropic Messages API and forward to an OpenAI-compatible provider. "
        "Configuration comes from the environment, --env-file, ./.env and ~/.claude/proxy.env."
    )
    optParameters = [
        ["port", "p", None, "Port to listen on (PORT, default 8082)."],
        ["host", None, None, "Interface to listen on (HOST, default 127.0.0.1)."],
        ["env-file", None, None, "Extra configuration file, read before ./.env."],
        ["connect-timeout", None, None, "Seconds to connect to the upstream, and for TLS (CONNECT_TIMEOUT, default 10)."],
        ["upstream-timeout", None, None, "Longest upstream silence in seconds (UPSTREAM_TIMEOUT, default 600)."],
        ["ping-interval", None, None, "Seconds of quiet before a ping to a client stream (PING_INTERVAL, default 15)."],
    ]
    optFlags = [
        ["debug", "d", "Log full requests and streams, keys redacted (LOG_MODE=debug)."],
        ["simple", "s", "Log only one line per request (LOG_MODE=simple)."],
        ["insecure-no-auth", None, "Allow a non-loopback HOST without ANTHROPIC_API_KEY."],
    ]

    def postOptions(self) -> None:  # noqa: N802
        """Build the settings now, so a bad value stops start-up with one line."""
        overrides = {variable: self[option] for option, variable in _VARIABLES.items() if self[option] is not None}
        if self["insecure-no-auth"]:
            overrides["INSECURE_NO_AUTH"] = "true"
        if self["debug"]:  # with both flags, the more detailed mode wins
            overrides["LOG_MODE"] = "debug"
        elif self["simple"]:
            overrides["LOG_MODE"] = "simple"
        try:
            self["settings"] = load_settings(env_file=self["env-file"], overrides=overrides)
        except ConfigError as error:
            raise SystemExit(f"ccproxy: configuration error: {error}") from None


def makeService(options: Any) -> IService:  # noqa: N802
    """The service twistd runs."""
    gc.disable()  # until tune_garbage_collector: see there
    try:
        from ccproxy.service import makeService as make

        settings: Settings = options["settings"]
        return make(settings)
    finally:
        from ccproxy.service import tune_garbage_collector

        tune_garbage_collector()  # before twistd forks into the background, as gc.freeze() advises

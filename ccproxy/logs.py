"""What ccproxy logs: one line per request, and redacted debug dumps.

Every request ends in exactly one line (L{RequestRecord.line}): time is added by the
log observer; the line has the client and upstream model, stream or not, status or
outcome, tokens, time to first token, total time and tokens per second. Debug mode adds
full dumps of what went in and out, with every key and Authorization value redacted.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from attrs import define
from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    LogEvent,
    Logger,
    formatEventAsClassicLogText,
    formatTime,
    jsonFileLogObserver,
)
from twisted.python.logfile import LogFile

from ccproxy.redact import redact_headers, redact_text

__all__ = [
    "RequestRecord",
    "Stats",
    "redact_headers",
    "redact_text",
    "debug_dump",
    "daemon_log_observer",
    "LOG_MODES",
    "LOG_FILE_ENV",
    "LOG_FORMAT_ENV",
]

_log = Logger(namespace="ccproxy")
LOG_MODES = ("default", "simple", "debug")
@define(eq=False)
class Stats:
    """Counters for C{/health} and C{ccproxy status}; one per service, never global."""

    started: float
    requests: int = 0
    errors: int = 0
    cancelled: int = 0
    active: int = 0

    def as_json(self, now: float) -> dict[str, Any]:
        """The counters and the uptime in seconds."""
        return {
            "uptime_seconds": round(now - self.started, 1),
            "requests": self.requests,
            "errors": self.errors,
            "cancelled": self.cancelled,
            "active": self.active,
        }


@define(eq=False)
class RequestRecord:
    """Everything the per-request line reports, filled in as the request goes."""

    request_id: str
    client_model: str
    upstream_model: str
    stream: bool
    started: float
    status: int = 0
    outcome: str = "ok"
    first_token: float | None = None
    ended: float | None = None
    usage: Mapping[str, Any] | None = None
    usage_estimated: bool = False
    error: str = ""

    def line(self) -> str:
        """The one line for this request."""
        ended = self.ended if self.ended is not None else self.started
        total = ended - self.started
        usage = self.usage or {}
        output = int(usage.get("output_tokens") or 0)
        parts = [
            self.request_id,
            f"{self.client_model} -> {self.upstream_model}",
            "stream" if self.stream else "json",
            str(self.status) if self.outcome == "ok" else f"{self.status} {self.outcome}",
            f"in={usage.get('input_tokens', 0)} out={output} "
            f"cache_read={usage.get('cache_read_input_tokens', 0)} "
            f"cache_write={usage.get('cache_creation_input_tokens', 0)}",
        ]
        if self.usage_estimated:
            parts.append("(estimated)")
        if self.first_token is not None:
            parts.append(f"ttft={self.first_token - self.started:.3f}s")
            generating = ended - self.first_token
            if output and generating > 0:
                parts.append(f"{output / generating:.1f} tok/s")
        parts.append(f"total={total:.3f}s")
        if self.error:
            parts.append(self.error)
        return " ".join(parts)


def log_request(record: RequestRecord) -> None:
    """Emit the request's line (level info, or warn for errors)."""
    emit = _log.info if record.outcome in ("ok", "cancelled") else _log.warn
    emit("{line}", line=record.line(), ccproxy_request=True)


def debug_dump(label: str, request_id: str, payload: Any, secrets: Iterable[str | None] = ()) -> None:
    """Log C{payload} (JSON-able or text) under C{label}, redacted, for debug mode."""
    if isinstance(payload, (bytes, bytearray)):
        text = bytes(payload).decode("utf-8", "replace")
    elif isinstance(payload, str):
        text = payload
    else:
        text = json.dumps(payload, ensure_ascii=False, indent=2, default=str)
    _log.debug(
        "{request_id} {label}:\n{text}",
        request_id=request_id,
        label=label,
        text=redact_text(text, secrets),
        ccproxy_debug=True,
    )


class ClassicText:
    """Formats events exactly as Twisted's text log files do (C{time [system] text}), cheaply.

    Twisted's formatter renders the local time (time zone lookup and C{strftime}) and
    parses the event's format string for every event; that was a tenth of the CPU of a
    whole proxied request. The time text is kept for the second it names, and a request
    line, whose text is already made, is written without a format pass.
    """

    def __init__(self) -> None:
        self._second: int | None = None
        self._stamp = ""

    def _time(self, when: float | None) -> str:
        if when is None:
            return formatTime(when)
        second = int(when)
        if second != self._second:
            self._second, self._stamp = second, formatTime(second)
        return self._stamp

    def __call__(self, event: LogEvent) -> str | None:
        line = event.get("line")
        if event.get("ccproxy_request") and isinstance(line, str) and "log_system" not in event:
            level = event.get("log_level")
            system = f"{event.get('log_namespace', '-')}#{level.name if level is not None else '-'}"
            text = line.replace("\n", "\n\t")  # as Twisted indents continuation lines
            return f"{self._time(event.get('log_time'))} [{system}] {text}\n"
        return formatEventAsClassicLogText(event, formatTime=self._time)


LOG_FILE_ENV = "CCPROXY_LOG_FILE"
LOG_FORMAT_ENV = "CCPROXY_LOG_FORMAT"
ROTATE_BYTES = 10_000_000
KEEP_ROTATED = 5


def daemon_log_observer() -> ILogObserver:
    """The log observer for C{twistd --logger ccproxy.logs.daemon_log_observer}.

    Unlike twistd's default file (1 MB pieces, kept forever), the file named by
    C{CCPROXY_LOG_FILE} (default C{~/.claude/ccproxy.log}) rotates at 10 MB and keeps five
    old pieces; C{SIGHUP} reopens it (for logrotate), C{SIGUSR1} rotates it now.
    C{CCPROXY_LOG_FORMAT=json} writes one JSON event per line, for machines.
    """
    path = Path(os.environ.get(LOG_FILE_ENV) or Path.home() / ".claude" / "ccproxy.log")
    path.parent.mkdir(parents=True, exist_ok=True)
    logfile = LogFile(path.name, str(path.parent), rotateLength=ROTATE_BYTES, maxRotatedFiles=KEEP_ROTATED)

    def on_signal(action: Any) -> Any:
        def handler(signum: int, frame: Any) -> None:
            from twisted.internet import reactor

            reactor.callFromThread(action)  # type: ignore[attr-defined]

        return handler

    signal.signal(signal.SIGHUP, on_signal(logfile.reopen))
    signal.signal(signal.SIGUSR1, on_signal(logfile.rotate))
    if os.environ.get(LOG_FORMAT_ENV) == "json":
        return jsonFileLogObserver(logfile, recordSeparator="")  # type: ignore[arg-type]  # JSON lines
    return FileLogObserver(logfile, ClassicText())  # type: ignore[arg-type]

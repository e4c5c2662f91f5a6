"""Fixtures for the hardening suite: every error the log receives while a test runs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from twisted.logger import LogLevel, formatEvent, globalLogPublisher


class LogErrors(list[dict[str, Any]]):
    """Log events that report a failure: C{log.failure}, C{isError}, level error/critical."""

    def describe(self, limit: int = 5) -> str:
        """The first few events, with their tracebacks, for an assertion message."""
        lines = []
        for event in self[:limit]:
            lines.append(formatEvent(event))
            failure = event.get("log_failure")
            if failure is not None:
                lines.append(failure.getTraceback())
        return "\n".join(lines)


@pytest.fixture
def log_errors() -> Iterator[LogErrors]:
    """Collects, for the length of the test, every log event that reports an error."""
    errors = LogErrors()

    def observe(event: dict[str, Any]) -> None:
        if (
            event.get("isError")
            or "log_failure" in event
            or event.get("log_level") in (LogLevel.error, LogLevel.critical)
        ):
            errors.append(event)

    globalLogPublisher.addObserver(observe)
    yield errors
    globalLogPublisher.removeObserver(observe)

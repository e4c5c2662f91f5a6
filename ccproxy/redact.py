"""Removing secrets from text that leaves the process (logs, error messages)."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["REDACTED", "SECRET_HEADERS", "redact_headers", "redact_text"]

REDACTED = "[redacted]"
SECRET_HEADERS = frozenset({"authorization", "x-api-key", "proxy-authorization", "api-key", "cookie"})
# Shapes of provider keys and bearer tokens, also when a provider echoes them back.
_KEYLIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-*]{6,}|Bearer\s+[A-Za-z0-9_\-\.=]{6,})")


def redact_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers safe to log: secret ones replaced by a marker."""
    return {name: (REDACTED if name.lower() in SECRET_HEADERS else value) for name, value in headers}


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """C{text} with the given secrets and anything shaped like a key replaced."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return _KEYLIKE.sub(REDACTED, text)

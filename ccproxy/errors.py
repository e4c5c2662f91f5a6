"""Anthropic-shaped errors: the status table, error bodies, and upstream error mapping.

Everything a client can see fail has the shape
C{{"type":"error","error":{"type":…,"message":…},"request_id":…}} and a status whose
class matches the cause, because Claude Code's retry and recovery logic keys on both
(PROTOCOL.md C and H.9). Pure: no Twisted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from attrs import field, frozen

from ccproxy.redact import redact_text

__all__ = [
    "ApiError",
    "ERROR_TYPES",
    "error_payload",
    "from_upstream",
    "retry_after_seconds",
    "upstream_error_details",
]

# HTTP status -> Anthropic error.type (PROTOCOL.md C.1)
ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


@frozen
class ApiError(Exception):
    """An error to return to the client: status, Anthropic type, message, extra headers."""

    status: int
    type: str
    message: str
    headers: Mapping[str, str] = field(factory=dict)

    @classmethod
    def of(cls, status: int, message: str, **headers: str) -> ApiError:
        """An error whose type follows from C{status} (other 4xx are invalid requests)."""
        kind = ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
        return cls(status, kind, message, {k.replace("_", "-"): v for k, v in headers.items()})

    def __str__(self) -> str:
        return f"{self.status} {self.type}: {self.message}"


def error_payload(error: ApiError, request_id: str | None = None) -> dict[str, Any]:
    """The JSON object for an error body or an SSE C{error} event."""
    payload: dict[str, Any] = {
        "type": "error",
        "error": {"type": error.type, "message": error.message},
    }
    if request_id:
        payload["request_id"] = request_id
    return payload


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> str | None:
    """C{retry-after} as whole seconds, from C{retry-after-ms}, seconds or an HTTP date."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return str(max(0, -(-int(float(millis)) // 1000)))
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return str(max(0, int(-(-float(value) // 1))))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    if now is None:
        return None
    return str(max(0, int(when - now + 0.999)))


_CONTEXT_MARKERS = (
    "context_length_exceeded",
    "exceed_context_size_error",
    "maximum context length",
    "exceeds the available context size",
    "prompt is too long",
    "input is too long",
    "context window",
    "too many tokens",
)
_NUMBERS = re.compile(r"(\d[\d,]*)")


def _unwrap(decoded: Any) -> Any:
    """Gemini's OpenAI-compatible endpoint wraps its error object in a one-item list."""
    if isinstance(decoded, list) and len(decoded) == 1 and isinstance(decoded[0], dict):
        return decoded[0]
    return decoded


def _upstream_message(body: bytes) -> tuple[str, str, str]:
    """(message, code, type) from an upstream error body, whatever its dialect."""
    try:
        decoded = _unwrap(json.loads(body))
    except (ValueError, UnicodeDecodeError):
        text = body[:500].decode("utf-8", "replace").strip()
        return (text or "no error body", "", "")
    if not isinstance(decoded, dict):
        return (str(decoded)[:500], "", "")
    error = decoded.get("error", decoded)
    if isinstance(error, str):
        return (error, "", "")
    if not isinstance(error, dict):
        return (json.dumps(decoded)[:500], "", "")
    message = error.get("message") or error.get("detail") or json.dumps(error)[:500]
    code = error.get("code")
    metadata = error.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("error_type"), str):
        code = metadata["error_type"]
    return (str(message), "" if code is None else str(code), str(error.get("type") or ""))


def upstream_error_details(body: bytes) -> tuple[str, str | None]:
    """The message and the named parameter (C{error.param}) of an upstream error body."""
    message, _, _ = _upstream_message(body)
    param = None
    try:
        decoded = _unwrap(json.loads(body))
        error = decoded.get("error") if isinstance(decoded, dict) else None
        if isinstance(error, dict) and isinstance(error.get("param"), str):
            param = error["param"]
    except (ValueError, UnicodeDecodeError):
        pass
    return message, param


def _context_overflow(message: str, code: str) -> ApiError | None:
    lowered = message.lower()
    if code != "context_length_exceeded" and not any(m in lowered for m in _CONTEXT_MARKERS):
        return None
    numbers = [int(n.replace(",", "")) for n in _NUMBERS.findall(message)]
    numbers = [n for n in numbers if n >= 100]
    if len(numbers) >= 4 and numbers[2] + numbers[3] == numbers[1] and numbers[2] < numbers[0]:
        # "max N. However, you requested T tokens (I in the messages, O in the completion)":
        # the prompt fits, the output budget does not -> Claude Code retries smaller.
        maximum, prompt, output = numbers[0], numbers[2], numbers[3]
        text = (
            f"input length and `max_tokens` exceed context limit: {prompt} + {output} > "
            f"{maximum}, decrease input length or `max_tokens` and try again"
        )
    elif len(numbers) >= 2:
        requested, maximum = max(numbers[:2]), min(numbers[:2])
        text = f"prompt is too long: {requested} tokens > {maximum} maximum"
    else:
        text = f"prompt is too long (capability_rejected: prompt_too_long): {message}"
    return ApiError(400, "invalid_request_error", text, {"x-should-retry": "false"})


def from_upstream(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    provider: str,
    now: float | None = None,
    secrets: Iterable[str | None] = (),
) -> ApiError:
    """Translate an upstream HTTP error into the error the client should see (H.9).

    @param headers: upstream response headers, lower-cased names.
    @param provider: a short name for messages (the upstream host).
    @param secrets: values to strip from the message (providers echo keys back).
    """
    message, code, kind = _upstream_message(body)
    message = redact_text(message, secrets)
    lowered = f"{message} {code} {kind}".lower()
    extra: dict[str, str] = {}
    retry_after = retry_after_seconds(headers, now)
    if retry_after is not None:
        extra["retry-after"] = retry_after
    if "x-should-retry" in headers:
        extra["x-should-retry"] = headers["x-should-retry"]
    if status in (400, 413, 422):
        overflow = _context_overflow(message, code)
        if overflow is not None:
            return overflow
    said = f"{provider}: {message}"
    if status == 401:
        return ApiError(401, "authentication_error", f"upstream rejected the API key ({said})", extra)
    if status == 402 or "insufficient_quota" in lowered or "payment_required" in lowered:
        return ApiError(402, "billing_error", said, {**extra, "x-should-retry": "false"})
    if status == 429:
        return ApiError(429, "rate_limit_error", said, extra)
    if status in (408, 504):
        return ApiError(504, "timeout_error", said, extra)
    if status == 503 or "overloaded" in lowered or status == 529:
        return ApiError(529, "overloaded_error", said, extra)
    if status >= 500:
        return ApiError(500, "api_error", said, extra)
    if status in (400, 422):
        return ApiError(400, "invalid_request_error", said, {**extra, "x-should-retry": "false"})
    if status in (403, 404, 413):
        return ApiError(status, ERROR_TYPES[status], said, extra)
    return ApiError.of(status if 400 <= status < 500 else 500, said, **extra)

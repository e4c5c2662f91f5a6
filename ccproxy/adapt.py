"""Learning an upstream's limits from its 400s: fix the request, retry once, remember.

Claude Code asks for 128,000 output tokens and sends parameters that many models
reject (C{max_tokens} on OpenAI reasoning models, C{temperature} on others). Rather than
fail every request, ccproxy reads the upstream's 400, derives a fix (a smaller limit, a
renamed or dropped field), retries once, and keeps the fix for that (base URL, model)
for the life of the process. Pure: the caller owns the store's lifetime.
"""

from __future__ import annotations

import re
from typing import Any

from attrs import define, field, frozen

__all__ = ["Fix", "LearnedFixes", "fix_for_error"]

TOKEN_FIELDS = ("max_tokens", "max_completion_tokens")
_DROPPABLE = (
    "temperature",
    "top_p",
    "stop",
    "reasoning_effort",
    "parallel_tool_calls",
    "stream_options",
    "reasoning",
    "reasoning_format",
    "thinking",
    "prompt_cache_key",
    "session_id",
)
_REASONING_FIELDS = ("reasoning_effort", "reasoning", "reasoning_format", "thinking")
# Ollama, for a model without thinking: '"llama3.1:8b" does not support thinking' or
# 'think value "medium" is not supported for this model'.
_NO_THINKING = re.compile(r"does not support thinking|think value .* is not supported", re.IGNORECASE)
_TOKEN_WORDS = re.compile(r"max_tokens|max_completion_tokens|max_output_tokens|completion tokens|output tokens")
_LIMIT_WORDS = re.compile(r"too large|at most|maximum|range|less than or equal|exceed|>", re.IGNORECASE)
_CONTEXT_MINUS_INPUT = re.compile(r"(\d+)\s*>\s*(\d+)\s*-\s*(\d+)")
_UNSUPPORTED = re.compile(
    r"unsupported|not supported|unrecognized|unknown (?:field|parameter)|only the default|does not support|not allowed",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\d+")


@frozen
class Fix:
    """Changes to apply to a Chat Completions body.

    @ivar rename: field renames, old name -> new name.
    @ivar drop: fields to remove.
    @ivar cap: the most output tokens the model accepts, if learned.
    """

    rename: tuple[tuple[str, str], ...] = ()
    drop: frozenset[str] = frozenset()
    cap: int | None = None

    def merge(self, other: Fix) -> Fix:
        """Both fixes at once (the later cap wins)."""
        renames = dict(self.rename)
        renames.update(other.rename)
        cap = other.cap if other.cap is not None else self.cap
        return Fix(tuple(renames.items()), self.drop | other.drop, cap)

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        """A copy of C{body} with this fix applied."""
        fixed = {k: v for k, v in body.items() if k not in self.drop}
        for old, new in self.rename:
            if old in fixed:
                fixed[new] = fixed.pop(old)
        if self.cap is not None:
            for name in TOKEN_FIELDS:
                if isinstance(fixed.get(name), int) and fixed[name] > self.cap:
                    fixed[name] = self.cap
        return fixed


@define(eq=False)
class LearnedFixes:
    """Fixes learned per (base URL, model); one store per running proxy."""

    _fixes: dict[tuple[str, str], Fix] = field(factory=dict)

    def get(self, base_url: str, model: str) -> Fix | None:
        """The fix learned for this upstream model, if any."""
        return self._fixes.get((base_url, model))

    def learn(self, base_url: str, model: str, fix: Fix) -> None:
        """Remember C{fix} (merged with what was known)."""
        key = (base_url, model)
        known = self._fixes.get(key)
        self._fixes[key] = fix if known is None else known.merge(fix)


def _token_field(body: dict[str, Any]) -> str | None:
    return next((name for name in TOKEN_FIELDS if name in body), None)


def _token_cap(body: dict[str, Any], message: str) -> Fix | None:
    name = _token_field(body)
    if name is None or not _TOKEN_WORDS.search(message) or not _LIMIT_WORDS.search(message):
        return None
    requested = body[name]
    if not isinstance(requested, int):
        return None
    window = _CONTEXT_MINUS_INPUT.search(message)
    if window:
        cap = int(window.group(2)) - int(window.group(3))
    else:
        candidates = [int(n) for n in _NUMBER.findall(message) if 256 <= int(n) < requested]
        if not candidates:
            return None
        cap = max(candidates)
    return Fix(cap=cap) if 0 < cap < requested else None


def _unsupported_field(body: dict[str, Any], message: str, param: str | None) -> Fix | None:
    if _NO_THINKING.search(message):
        present = frozenset(name for name in _REASONING_FIELDS if name in body)
        return Fix(drop=present) if present else None
    if not _UNSUPPORTED.search(message) and not param:
        return None
    lowered = message.lower()
    if "max_tokens" in lowered and "max_completion_tokens" in lowered and "max_tokens" in body:
        return Fix(rename=(("max_tokens", "max_completion_tokens"),))
    if param == "max_completion_tokens" or (
        "max_completion_tokens" in lowered and "max_completion_tokens" in body and _UNSUPPORTED.search(message)
    ):
        return Fix(rename=(("max_completion_tokens", "max_tokens"),))
    named = [name for name in _DROPPABLE if name in body and (name == param or f"'{name}'" in lowered or f'"{name}"' in lowered or f"`{name}`" in lowered or f" {name} " in f" {lowered} ")]
    if named and _UNSUPPORTED.search(message):
        drop = set(named)
        if drop & {"temperature", "top_p"}:
            drop |= {"temperature", "top_p"} & body.keys()  # sampling goes as a pair
        return Fix(drop=frozenset(drop))
    return None


def fix_for_error(body: dict[str, Any], message: str, param: str | None = None) -> Fix | None:
    """A fix for an upstream 400 about C{body}, or C{None} when there is nothing to fix.

    @param message: the upstream's error message.
    @param param: the upstream's C{error.param}, when it names the field.
    """
    fix = _unsupported_field(body, message, param) or _token_cap(body, message)
    if fix is None or fix.apply(body) == body:
        return None
    return fix

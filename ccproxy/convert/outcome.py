"""How a turn ended: OpenAI C{finish_reason} and C{usage} -> Anthropic (H.7, H.8)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["stop_reason", "anthropic_usage", "estimate_tokens"]


def stop_reason(finish: str | None, tool_used: bool) -> str:
    """The Anthropic C{stop_reason} for an upstream C{finish_reason}.

    A turn that produced tool calls is a C{tool_use} turn whatever the upstream says
    (Gemini and some gateways report C{stop}); C{tool_calls} without a parsed call is an
    ordinary end.
    """
    if finish == "length":
        return "max_tokens"
    if finish == "content_filter":
        return "refusal"
    if tool_used:
        return "tool_use"
    if finish is not None and "context" in finish:
        return "model_context_window_exceeded"
    return "end_turn"


def _count(value: Any) -> int:
    """A token count from untrusted JSON: finite numbers only, never negative."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return 0
    return max(0, int(value))


def estimate_tokens(chars: int) -> int:
    """A rough token count for C{chars} characters of output (at least 1)."""
    return max(1, (chars + 3) // 4)


def anthropic_usage(usage: Any, input_estimate: int, output_estimate: int) -> dict[str, Any]:
    """Anthropic C{usage} from an OpenAI C{usage} object (or its absence).

    Anthropic's C{input_tokens} excludes cache reads and writes, OpenAI's C{prompt_tokens}
    includes them. Claude Code sums the three to decide when to compact, so the input is
    never reported as 0: without upstream numbers, the local estimates stand in.
    """
    if not isinstance(usage, dict):
        usage = {}
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    cache_read = _count(details.get("cached_tokens")) or _count(usage.get("prompt_cache_hit_tokens"))
    cache_write = _count(details.get("cache_write_tokens"))
    prompt = _count(usage.get("prompt_tokens"))
    input_tokens = max(0, prompt - cache_read - cache_write)
    if prompt == 0 and cache_read == 0 and cache_write == 0:
        input_tokens = max(1, input_estimate)
    output = _count(usage.get("completion_tokens")) or max(1, output_estimate)
    result: dict[str, Any] = {
        "input_tokens": input_tokens,
        "output_tokens": output,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
    }
    completion_details = usage.get("completion_tokens_details")
    if isinstance(completion_details, dict):
        thinking = _count(completion_details.get("reasoning_tokens"))
        if thinking:
            result["output_tokens_details"] = {"thinking_tokens": thinking}
    return result

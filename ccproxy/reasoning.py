# -*- test-case-name: tests.providers.test_profiles -*-
"""What each provider is asked for when the client asks for thinking (PROTOCOL.md H.4).

Claude Code sends C{thinking} (C{adaptive} with C{output_config.effort}, C{enabled} with
a budget, or C{disabled}). Every provider spells the request differently and accepts
different levels per model; each function here turns the client's wish into the
provider's fields for one model, and never sends a value that model rejects. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from ccproxy.anthropic import OutputConfig, Thinking

__all__ = [
    "ReasoningFields",
    "LEVELS",
    "requested_effort",
    "clamp_effort",
    "no_reasoning",
    "openai_reasoning",
    "openrouter_reasoning",
    "deepseek_reasoning",
    "ollama_reasoning",
    "gemini_reasoning",
    "groq_reasoning",
]

ReasoningFields = Callable[[str, "Thinking | None", "OutputConfig | None"], dict[str, Any]]
"""C{(upstream model, thinking, output_config) -> request fields}."""

LEVELS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
"""Effort levels, weakest first (the union of what the providers know)."""

_OPENAI_GPT5 = re.compile(r"^gpt-5(?:\.(\d+))?(.*)$")
_OPENAI_O_SERIES = re.compile(r"^o\d")
_DEEPSEEK_MAX_BUDGET = 32000


def _name(model: str) -> str:
    """The model name without a routing prefix (C{openai/gpt-5} -> C{gpt-5}), lower case."""
    return model.rsplit("/", 1)[-1].lower()


def _bucket(budget: int) -> str:
    """An effort level for an Anthropic thinking budget (the H.4 heuristic)."""
    if budget < 4096:
        return "low"
    return "medium" if budget < 16384 else "high"


def requested_effort(thinking: Thinking | None, output: OutputConfig | None) -> str | None:
    """The client's wish as a level of L{LEVELS}: C{none} = off, C{None} = model default."""
    if thinking is None:
        return None
    if thinking.type == "disabled":
        return "none"
    if thinking.type == "enabled":
        return _bucket(thinking.budget_tokens or 0)
    if thinking.type == "adaptive" and output is not None and output.effort:
        return output.effort if output.effort in LEVELS else "high"
    return None


def clamp_effort(effort: str, allowed: Sequence[str]) -> str:
    """The strongest level in C{allowed} not above C{effort} (else the weakest allowed)."""
    rank = LEVELS.index(effort) if effort in LEVELS else LEVELS.index("high")
    fitting = [level for level in allowed if LEVELS.index(level) <= rank]
    return max(fitting, key=LEVELS.index) if fitting else min(allowed, key=LEVELS.index)


def no_reasoning(model: str, thinking: Thinking | None, output: OutputConfig | None) -> dict[str, Any]:
    """Providers without a reasoning control (Mistral, generic servers)."""
    return {}


def _openai_levels(model: str) -> tuple[str, ...] | None:
    """The C{reasoning_effort} values an OpenAI model accepts; C{None}: not a reasoning model."""
    name = _name(model)
    if _OPENAI_O_SERIES.match(name):
        return ("low", "medium", "high")
    match = _OPENAI_GPT5.match(name)
    if match is None:
        return None  # gpt-4o and friends reject reasoning_effort
    minor, suffix = int(match.group(1) or 0), match.group(2)
    if "-pro" in suffix:
        return ("high",)
    if minor == 0:
        return ("minimal", "low", "medium", "high")
    levels: tuple[str, ...] = ("none", "low", "medium", "high")
    return levels + ("xhigh",) if minor >= 2 or "codex-max" in suffix else levels


def openai_reasoning(model: str, thinking: Thinking | None, output: OutputConfig | None) -> dict[str, Any]:
    """C{reasoning_effort}, clamped to the model's levels.

    Thinking off: C{none} (gpt-5.1 and later), C{minimal} (gpt-5), nothing at all for
    the o-series and gpt-5-pro, which cannot reason less than they do by default.
    """
    levels = _openai_levels(model)
    wanted = requested_effort(thinking, output)
    if levels is None or wanted is None:
        return {}
    if wanted == "none":
        off = next((level for level in ("none", "minimal") if level in levels), None)
        return {"reasoning_effort": off} if off else {}
    return {"reasoning_effort": clamp_effort(wanted, [lv for lv in levels if lv not in ("none", "minimal")])}


def openrouter_reasoning(model: str, thinking: Thinking | None, output: OutputConfig | None) -> dict[str, Any]:
    """OpenRouter's unified C{reasoning} object: C{effort} or C{max_tokens}, never both."""
    if thinking is None:
        return {}
    if thinking.type == "disabled":
        return {"reasoning": {"effort": "none"}}
    if thinking.type == "enabled" and thinking.budget_tokens:
        return {"reasoning": {"max_tokens": thinking.budget_tokens}}
    if output is not None and output.effort:
        return {"reasoning": {"effort": output.effort}}
    return {"reasoning": {"enabled": True}}


def deepseek_reasoning(model: str, thinking: Thinking | None, output: OutputConfig | None) -> dict[str, Any]:
    """C{thinking: {type: enabled|disabled}} plus C{reasoning_effort} C{high} or C{max}."""
    if thinking is None:
        return {}
    if thinking.type == "disabled":
        return {"thinking": {"type": "disabled"}}
    fields: dict[str, Any] = {"thinking": {"type": "enabled"}}
    if thinking.type == "enabled":
        fields["reasoning_effort"] = "max" if (thinking.budget_tokens or 0) >= _DEEPSEEK_MAX_BUDGET else "high"
    elif output is not None and output.effort:
        fields["reasoning_effort"] = "max" if output.effort in ("xhigh", "max") else "high"
    return fields


def ollama_reasoning(model: str, thinking: Thinking | None, output: OutputConfig | None) -> dict[str, Any]:
    """C{reasoning_effort}; Ollama maps every level itself (C{none} turns thinking off).

    A model without thinking answers 400 "does not support thinking"; the exchange then
    drops the field for that model (L{ccproxy.adapt}).
    """
    wanted = requested_effort(thinking, output)
    return {"reasoning_effort": wanted} if wanted else {}


def gemini_reasoning(model: str, thinking: Thinking | None, output: OutputConfig | None) -> dict[str, Any]:
    """C{reasoning_effort} as Gemini's compatibility layer maps it to thinking levels.

    Only Gemini 2.5 Flash models can stop thinking (C{none}); Gemini 3 Flash gets
    C{minimal}, Pro models C{low}, the least they do.
    """
    wanted = requested_effort(thinking, output)
    if wanted is None:
        return {}
    if wanted == "none":
        name = _name(model)
        if name.startswith("gemini-2.5-flash"):
            return {"reasoning_effort": "none"}
        return {"reasoning_effort": "minimal" if "flash" in name else "low"}
    return {"reasoning_effort": clamp_effort(wanted, ("low", "medium", "high"))}


def groq_reasoning(model: str, thinking: Thinking | None, output: OutputConfig | None) -> dict[str, Any]:
    """Groq: only its reasoning models take reasoning fields; others answer 400.

    gpt-oss: C{reasoning_effort} low/medium/high (it cannot stop reasoning) and no
    C{reasoning_format}, which it rejects (its reasoning is already parsed). Qwen 3:
    C{reasoning_format: parsed} and C{reasoning_effort} C{none} or C{default}.
    """
    name = model.lower()
    wanted = requested_effort(thinking, output)
    if "gpt-oss" in name:
        if wanted is None or wanted == "none":
            return {}
        return {"reasoning_effort": clamp_effort(wanted, ("low", "medium", "high"))}
    if "qwen3" in name:
        fields: dict[str, Any] = {"reasoning_format": "parsed"}
        if wanted is not None:
            fields["reasoning_effort"] = "none" if wanted == "none" else "default"
        return fields
    return {}

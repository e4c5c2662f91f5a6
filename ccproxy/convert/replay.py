# -*- test-case-name: tests.providers.test_profiles -*-
"""Earlier reasoning, sent back to the provider that produced it (PROTOCOL.md H.4 replay).

Claude Code returns each thinking block of the conversation with its signature; ours
are carriers (L{ccproxy.convert.carrier}) that say which profile and model produced the
reasoning and hold what that provider needs back. Only carriers of the current profile
are replayed, in the profile's field (L{ccproxy.providers.Replay}):

 - DeepSeek: C{reasoning_content} (C{""} after tool calls when nothing survived: the
   field is mandatory there);
 - Ollama: C{reasoning};
 - OpenRouter: C{reasoning_details} as received, minus Anthropic-format
   C{reasoning.text} items without a signature (Anthropic rejects those), plus the
   text as C{reasoning};
 - Gemini: each tool call's thought signature on its C{tool_calls} entry, only for the
   model that signed it; a turn whose first call has no signature gets Gemini's
   documented bypass value instead, so histories from other models still pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs
from attrs import frozen

from ccproxy.anthropic import ThinkingBlock
from ccproxy.convert.carrier import decode_carrier
from ccproxy.openai import ChatMessage, ToolCall
from ccproxy.providers import Profile

__all__ = ["Reasoning", "gather_reasoning", "replay_reasoning", "SIGNATURE_BYPASS", "replayable_detail"]

SIGNATURE_BYPASS = "skip_thought_signature_validator"
_ANTHROPIC_FORMAT = "anthropic-claude-v1"


@frozen
class Reasoning:
    """What one assistant turn's thinking blocks carry for the current provider.

    @ivar text: the thinking text, or C{None} when no block is replayable.
    @ivar details: OpenRouter C{reasoning_details} items, in order.
    @ivar signatures: Gemini thought signatures by (client) tool-call id.
    """

    text: str | None = None
    details: tuple[dict[str, Any], ...] = ()
    signatures: dict[str, str] = attrs.field(factory=dict)


def replayable_detail(detail: dict[str, Any]) -> bool:
    """Whether OpenRouter may get this C{reasoning_details} item back.

    Anthropic-format text (the default format) needs its signature; other formats
    (OpenAI, Gemini, xAI summaries and encrypted items) go back as they came.
    """
    if detail.get("type") != "reasoning.text":
        return True
    return (detail.get("format") or _ANTHROPIC_FORMAT) != _ANTHROPIC_FORMAT or bool(detail.get("signature"))


def gather_reasoning(blocks: Iterable[ThinkingBlock], profile: Profile, model: str) -> Reasoning:
    """Collect the replayable part of C{blocks} for C{profile} and C{model}."""
    texts: list[str] = []
    details: list[dict[str, Any]] = []
    signatures: dict[str, str] = {}
    replayable = False
    for block in blocks:
        carrier = decode_carrier(block.signature)
        if carrier is None or carrier.profile != profile.name:
            continue  # foreign (real Anthropic) or another provider's: useless there
        replayable = True
        texts.append(block.thinking)
        details.extend(d for d in carrier.details if replayable_detail(d))
        if carrier.model == model:  # a signature is only valid for the model that made it
            signatures.update(carrier.signatures)
    return Reasoning("".join(texts) if replayable else None, tuple(details), signatures)


def _signed_calls(calls: Sequence[ToolCall], client_ids: Sequence[str], signatures: dict[str, str]) -> list[ToolCall]:
    signed = []
    for position, (call, client_id) in enumerate(zip(calls, client_ids)):
        signature = signatures.get(client_id) or (SIGNATURE_BYPASS if position == 0 else None)
        if signature is not None:
            call = attrs.evolve(call, extra_content={"google": {"thought_signature": signature}})
        signed.append(call)
    return signed


def replay_reasoning(
    message: ChatMessage, reasoning: Reasoning, profile: Profile, client_ids: Sequence[str]
) -> ChatMessage:
    """C{message} (an assistant message) with the reasoning fields C{profile} wants.

    @param client_ids: the client's C{tool_use} id of each of the message's tool calls.
    """
    kind = profile.replay
    calls = message.tool_calls or []
    text = reasoning.text
    if kind == "reasoning_content":
        if text is None and calls:
            text = ""  # DeepSeek insists on the field after tool calls
        return message if text is None else attrs.evolve(message, reasoning_content=text)
    if kind == "reasoning":
        return message if text is None else attrs.evolve(message, reasoning=text)
    if kind == "reasoning_details":
        return attrs.evolve(message, reasoning=text or None, reasoning_details=list(reasoning.details) or None)
    if kind == "thought_signature" and calls:
        return attrs.evolve(message, tool_calls=_signed_calls(calls, client_ids, reasoning.signatures))
    return message

# -*- test-case-name: tests.providers.test_profiles -*-
"""Last adjustments of a converted message list to one provider's rules (PROTOCOL.md H.2).

The message walk (L{ccproxy.convert.messages}) yields what OpenAI accepts. Some
providers are stricter:

 - DeepSeek and Mistral want user and assistant turns to alternate: consecutive
   messages of one role are merged (H.2 step 6);
 - Mistral rejects a user message right after tool messages ("Unexpected role 'user'
   after role 'tool'"), which Claude Code produces on almost every tool turn (results
   plus C{<system-reminder>} text): the text joins the last tool result, and a user
   message with images gets a one-line assistant turn before it;
 - Anthropic models on OpenRouter take at most 4 C{cache_control} breakpoints: the
   oldest extra ones are dropped.
"""

from __future__ import annotations

import attrs

from ccproxy.openai import ChatMessage, ContentPart, TextPart
from ccproxy.providers import Profile

__all__ = [
    "adjust_messages",
    "merge_roles",
    "bridge_tool_results",
    "cap_cache_breakpoints",
    "BRIDGE",
    "MAX_BREAKPOINTS",
]

BRIDGE = "(tool results received)"
MAX_BREAKPOINTS = 4


def _parts(content: str | list[ContentPart] | None) -> list[ContentPart]:
    if content is None:
        return []
    return [TextPart(content)] if isinstance(content, str) else list(content)


def _joined(first: str | None, second: str | None) -> str | None:
    if first is None and second is None:
        return None
    return (first or "") + (second or "")


def _merge(first: ChatMessage, second: ChatMessage) -> ChatMessage:
    """Two consecutive messages of one role as one."""
    if isinstance(first.content, str) and isinstance(second.content, str):
        content: str | list[ContentPart] | None = f"{first.content}\n\n{second.content}"
    elif first.content is None or second.content is None:
        content = first.content if second.content is None else second.content
    else:
        content = _parts(first.content) + _parts(second.content)
    calls = (first.tool_calls or []) + (second.tool_calls or [])
    details = (first.reasoning_details or []) + (second.reasoning_details or [])
    return attrs.evolve(
        first,
        content=content,
        tool_calls=calls or None,
        reasoning_content=_joined(first.reasoning_content, second.reasoning_content),
        reasoning=_joined(first.reasoning, second.reasoning),
        reasoning_details=details or None,
    )


def merge_roles(messages: list[ChatMessage]) -> list[ChatMessage]:
    """Merge consecutive user messages, and consecutive assistant messages."""
    out: list[ChatMessage] = []
    for message in messages:
        if out and message.role == out[-1].role and message.role in ("user", "assistant"):
            out[-1] = _merge(out[-1], message)
        else:
            out.append(message)
    return out


def bridge_tool_results(messages: list[ChatMessage]) -> list[ChatMessage]:
    """Never a user message right after a tool message (see the module docstring)."""
    out: list[ChatMessage] = []
    for message in messages:
        previous = out[-1] if out else None
        if message.role == "user" and previous is not None and previous.role == "tool":
            parts = _parts(message.content)
            if all(isinstance(part, TextPart) for part in parts):
                text = "\n\n".join(part.text for part in parts if isinstance(part, TextPart))
                out[-1] = attrs.evolve(previous, content=f"{previous.content}\n\n{text}")
                continue
            out.append(ChatMessage("assistant", BRIDGE))
        out.append(message)
    return out


def cap_cache_breakpoints(messages: list[ChatMessage], limit: int = MAX_BREAKPOINTS) -> list[ChatMessage]:
    """Keep only the last C{limit} C{cache_control} markers of the request."""
    positions = [
        (m, p)
        for m, message in enumerate(messages)
        if isinstance(message.content, list)
        for p, part in enumerate(message.content)
        if isinstance(part, TextPart) and part.cache_control is not None
    ]
    drop = positions[: max(0, len(positions) - limit)]
    out = list(messages)
    for m, p in drop:
        parts = _parts(out[m].content)
        part = parts[p]
        if isinstance(part, TextPart):
            parts[p] = attrs.evolve(part, cache_control=None)
        out[m] = attrs.evolve(out[m], content=parts)
    return out


def adjust_messages(messages: list[ChatMessage], profile: Profile, model: str) -> list[ChatMessage]:
    """Apply every rule of this module that C{profile} calls for."""
    if profile.merge_roles:
        messages = merge_roles(messages)
    if not profile.user_after_tool:
        messages = bridge_tool_results(messages)
    if profile.cache_control(model):
        messages = cap_cache_breakpoints(messages)
    return messages

"""Assembling what providers stream in pieces: tool calls and reasoning details.

Kept apart from L{ccproxy.convert.stream}, which decides when to emit; these helpers only
say what the pieces add up to.
"""

from __future__ import annotations

import json
from typing import Any

from attrs import define, field

__all__ = ["ToolCall", "starts_new", "thought_signature", "merge_detail", "complete_json"]


@define(eq=False)
class ToolCall:
    """One tool call being assembled from fragments."""

    id: str | None
    name: str | None = None
    arguments: list[str] = field(factory=list)
    emitted: bool = False
    signature: str | None = None


def starts_new(call: ToolCall, call_id: str | None, name: str | None) -> bool:
    """Whether a fragment begins a call other than C{call}: another id, or a second name."""
    if call_id and call.id and call_id != call.id:
        return True
    return bool(name and call.name and complete_json(call.arguments))


def thought_signature(fragment: dict[str, Any]) -> str | None:
    """Gemini's C{extra_content.google.thought_signature} of a tool-call fragment."""
    extra = fragment.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    return signature if isinstance(signature, str) and signature else None


def merge_detail(details: list[dict[str, Any]], detail: dict[str, Any]) -> None:
    """Add a streamed C{reasoning_details} item, merging C{reasoning.text} fragments.

    OpenRouter streams one reasoning text as many fragments, its signature in the last
    one; it wants the whole item back, as its non-streaming answer gives it.
    """
    last = details[-1] if details else None
    if (
        last is None
        or not detail.get("type") == last.get("type") == "reasoning.text"
        or detail.get("index") != last.get("index")
    ):
        details.append(dict(detail))
        return
    if detail.get("text"):
        last["text"] = f"{last.get('text') or ''}{detail['text']}"
    for key in ("signature", "format"):
        if detail.get(key) and not last.get(key):
            last[key] = detail[key]


def complete_json(fragments: list[str]) -> bool:
    """Whether a call's arguments so far already form one whole JSON object."""
    text = "".join(fragments).strip()
    if not text.endswith("}"):
        return False
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False

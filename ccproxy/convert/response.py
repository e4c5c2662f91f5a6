"""A non-streaming OpenAI completion, read as one stream chunk (PROTOCOL.md H.5).

Some servers answer with a plain JSON completion even when asked to stream. Rather than
keep a second converter in step with the streaming one, the completion's message is
turned into a single chunk whose delta holds everything, and fed to the same
L{ccproxy.convert.stream.StreamConverter}: one set of rules for ids, names, arguments,
stop reasons and usage.
"""

from __future__ import annotations

from typing import Any

__all__ = ["completion_to_chunk"]


def completion_to_chunk(completion: Any) -> dict[str, Any]:
    """The chunk equivalent to a C{chat.completion} object (errors pass through)."""
    if not isinstance(completion, dict):
        return {"error": {"message": "upstream answered with a JSON value that is not an object"}}
    if completion.get("error"):
        return {"error": completion["error"]}
    chunk: dict[str, Any] = {"usage": completion.get("usage")}
    choices = completion.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        choice = choices[0]
        message = choice.get("message")
        delta = dict(message) if isinstance(message, dict) else {}
        calls = delta.get("tool_calls")
        if isinstance(calls, list):  # complete calls: give each its own index
            delta["tool_calls"] = [
                {**call, "index": number} for number, call in enumerate(calls) if isinstance(call, dict)
            ]
        chunk["choices"] = [
            {"index": 0, "delta": delta, "finish_reason": choice.get("finish_reason") or "stop"}
        ]
    else:
        chunk["choices"] = []
    return chunk

"""What ccproxy knows about upstream models: output cap, context window, abilities.

Claude Code asks for 128,000 output tokens (32,000 for names it does not know); most
models accept far fewer. A small table of well-known models, plus C{MODEL_LIMITS} from
the configuration, lets the first request already fit. Models not listed are learned
from their 400s instead (L{ccproxy.adapt}).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from attrs import frozen

__all__ = ["ModelInfo", "KNOWN_MODELS", "model_info", "parse_model_limits", "budget_output"]


@frozen
class ModelInfo:
    """Limits and abilities of one model family.

    @ivar max_output: most output tokens (incl. reasoning) per request.
    @ivar context_window: prompt plus output, in tokens (0 = unknown).
    """

    max_output: int
    context_window: int = 0
    reasoning: bool = False
    vision: bool = True


# Prefix -> info; the longest matching prefix wins. Provider prefixes ("openai/") are
# ignored when matching.
KNOWN_MODELS: Mapping[str, ModelInfo] = {
    "gpt-5": ModelInfo(128000, 400000, reasoning=True),
    "gpt-4.1": ModelInfo(32768, 1047576),
    "gpt-4o": ModelInfo(16384, 128000),
    "o1": ModelInfo(100000, 200000, reasoning=True),
    "o3": ModelInfo(100000, 200000, reasoning=True),
    "o4-mini": ModelInfo(100000, 200000, reasoning=True),
    "deepseek-chat": ModelInfo(8192, 128000, vision=False),
    "deepseek-reasoner": ModelInfo(65536, 128000, reasoning=True, vision=False),
    "claude-": ModelInfo(64000, 200000, reasoning=True),
    "gemini-2.5": ModelInfo(65536, 1048576, reasoning=True),
    "gemini-3": ModelInfo(65536, 1048576, reasoning=True),
    "gpt-oss": ModelInfo(65536, 131072, reasoning=True),
    "qwen3-32b": ModelInfo(40960, 131072, reasoning=True),
    "llama-3.3-70b": ModelInfo(32768, 131072),
    "mistral-large": ModelInfo(32768, 131072, vision=False),
    "codestral": ModelInfo(32768, 256000, vision=False),
}

_ENTRY = re.compile(r"^\s*([^=\s]+)\s*=\s*(\d+)\s*(?::\s*(\d+))?\s*$")


def parse_model_limits(text: str) -> dict[str, ModelInfo]:
    """Parse C{MODEL_LIMITS}: C{model=max_output[:context_window]} entries, comma separated.

    @raise ValueError: an entry is malformed (the message shows it).
    """
    limits: dict[str, ModelInfo] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        match = _ENTRY.match(entry)
        if not match or int(match.group(2)) <= 0:
            raise ValueError(f"{entry!r} is not model=max_output[:context_window]")
        window = int(match.group(3) or 0)
        limits[match.group(1)] = ModelInfo(int(match.group(2)), window)
    return limits


def model_info(model: str, overrides: Mapping[str, ModelInfo] | None = None) -> ModelInfo | None:
    """What is known of C{model}: an exact override first, then the longest known prefix."""
    if overrides and model in overrides:
        return overrides[model]
    name = model.rsplit("/", 1)[-1].lower()
    best = ""
    for prefix in KNOWN_MODELS:
        if name.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return KNOWN_MODELS[best] if best else None


def budget_output(requested: int, info: ModelInfo | None, input_estimate: int) -> int | None:
    """The output limit to send, or C{None} when the prompt alone cannot fit the window.

    The limit is the client's request, capped by the model's maximum and by the room the
    context window leaves after the (estimated) prompt.
    """
    if info is None:
        return requested
    limit = min(requested, info.max_output)
    if info.context_window:
        room = info.context_window - input_estimate
        if room <= 0:
            return None
        limit = min(limit, room)
    return max(1, limit)

"""Provider profiles: what each OpenAI-compatible dialect needs, as data plus small hooks.

A profile is chosen from the upstream base URL (or C{PROVIDER}); the pure request
converter asks it how to shape the body. Adding a provider means adding a profile here
and its fixtures, never a branch elsewhere (DESIGN.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from attrs import frozen

from ccproxy.anthropic import OutputConfig, Thinking
from ccproxy.convert.names import ANY_ID, MISTRAL_ID, OPENAI_ID, IdRule

__all__ = ["Profile", "PROFILES", "profile_for", "ReasoningFields"]

ReasoningFields = Callable[[str, "Thinking | None", "OutputConfig | None"], dict[str, Any]]

_OPENAI_REASONING = re.compile(r"^(?:openai/)?(?:gpt-5|o[1-9])", re.IGNORECASE)
_EFFORTS = ("low", "medium", "high")


def _bucket(budget: int) -> str:
    """An effort level for an Anthropic thinking budget (PROTOCOL.md H.4 heuristic)."""
    if budget < 4096:
        return "low"
    return "medium" if budget < 16384 else "high"


def _effort(thinking: Thinking | None, output: OutputConfig | None) -> str | None:
    """The effort the client asked for, clamped to low/medium/high; None = model default."""
    if thinking is None:
        return None
    if thinking.type == "enabled":
        return _bucket(thinking.budget_tokens or 0)
    if thinking.type == "adaptive" and output is not None and output.effort:
        return output.effort if output.effort in _EFFORTS else "high"
    return None


def _openai_reasoning(
    model: str, thinking: Thinking | None, output: OutputConfig | None
) -> dict[str, Any]:
    if not _OPENAI_REASONING.match(model):
        return {}  # gpt-4o and friends reject reasoning_effort
    if thinking is not None and thinking.type == "disabled":
        return {"reasoning_effort": "minimal"}
    effort = _effort(thinking, output)
    return {"reasoning_effort": effort} if effort else {}


def _openrouter_reasoning(
    model: str, thinking: Thinking | None, output: OutputConfig | None
) -> dict[str, Any]:
    if thinking is None:
        return {}
    if thinking.type == "disabled":
        return {"reasoning": {"effort": "none"}}
    if thinking.type == "enabled" and thinking.budget_tokens:
        return {"reasoning": {"max_tokens": thinking.budget_tokens}}
    if output is not None and output.effort:
        return {"reasoning": {"effort": output.effort}}
    return {"reasoning": {"enabled": True}}


def _ollama_reasoning(
    model: str, thinking: Thinking | None, output: OutputConfig | None
) -> dict[str, Any]:
    if thinking is not None and thinking.type == "disabled":
        return {"reasoning_effort": "none"}
    effort = _effort(thinking, output)
    return {"reasoning_effort": effort} if effort else {}


def _no_reasoning(
    model: str, thinking: Thinking | None, output: OutputConfig | None
) -> dict[str, Any]:
    return {}


def _openai_sampling(model: str) -> bool:
    return not _OPENAI_REASONING.match(model)


def _always(model: str) -> bool:
    return True


@frozen
class Profile:
    """How one provider dialect wants its requests.

    @ivar token_field: the body field for the output limit.
    @ivar mid_system: C{inline} keeps mid-conversation system messages as C{system}
        messages; C{fold} moves their text into the adjacent user message.
    @ivar reasoning: request fields for the client's thinking/effort settings.
    @ivar sampling: whether a model accepts C{temperature}/C{top_p}.
    @ivar reasoning_replay: the assistant-message field that carries earlier reasoning
        text back upstream, if the provider wants it.
    @ivar pdf_files: whether PDFs may be sent as C{file} parts.
    @ivar image_urls: whether remote image URLs are accepted (else a text note).
    @ivar id_rule: the provider's constraint on tool-call ids sent to it.
    """

    name: str
    token_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    mid_system: Literal["inline", "fold"] = "fold"
    reasoning: ReasoningFields = _no_reasoning
    sampling: Callable[[str], bool] = _always
    reasoning_replay: str | None = None
    pdf_files: bool = False
    image_urls: bool = True
    id_rule: IdRule = ANY_ID

    def headers(self, settings: Any) -> dict[str, str]:
        """Extra upstream headers (OpenRouter attribution)."""
        if self.name != "openrouter":
            return {}
        headers = {}
        if settings.openrouter_app_url:
            headers["HTTP-Referer"] = settings.openrouter_app_url
        if settings.openrouter_app_name:
            headers["X-Title"] = settings.openrouter_app_name
        return headers


PROFILES: Mapping[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile(
            "openai",
            token_field="max_completion_tokens",
            mid_system="inline",
            reasoning=_openai_reasoning,
            sampling=_openai_sampling,
            pdf_files=True,
            id_rule=OPENAI_ID,
        ),
        Profile(
            "openrouter",
            mid_system="inline",
            reasoning=_openrouter_reasoning,
            pdf_files=True,
            reasoning_replay="reasoning",
        ),
        Profile(
            "ollama",
            reasoning=_ollama_reasoning,
            image_urls=False,
            reasoning_replay="reasoning",
        ),
        Profile("deepseek", reasoning_replay="reasoning_content"),
        Profile("mistral", id_rule=MISTRAL_ID),
        Profile("generic"),
    )
}

_HOSTS = (
    ("openrouter.ai", "openrouter"),
    ("api.openai.com", "openai"),
    ("api.deepseek.com", "deepseek"),
    ("api.mistral.ai", "mistral"),
    ("ollama", "ollama"),
)


def profile_for(base_url: str, override: str | None = None) -> Profile:
    """The profile for an upstream base URL, or the one named by C{override}."""
    if override:
        return PROFILES.get(override.lower(), PROFILES["generic"])
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    for marker, name in _HOSTS:
        if marker in host:
            return PROFILES[name]
    if parts.port == 11434:
        return PROFILES["ollama"]
    return PROFILES["generic"]

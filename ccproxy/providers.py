# -*- test-case-name: tests.providers.test_profiles -*-
"""Provider profiles: what each OpenAI-compatible dialect needs, as data plus small hooks.

A profile is chosen from the upstream base URL (or C{PROVIDER}); the pure request
converter asks it how to shape the body, the stream converter what to keep for the next
turn. Adding a provider means adding a profile here (and its fixtures under
C{tests/fixtures/<provider>/}), never a branch elsewhere (DESIGN.md). The capability
matrix these profiles follow is PROTOCOL.md G.9; the reasoning request shapes are in
L{ccproxy.reasoning}, the schema rewriting in L{ccproxy.schema}.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from attrs import frozen

from ccproxy.convert.names import ANY_ID, MISTRAL_ID, OPENAI_ID, IdRule
from ccproxy.reasoning import (
    ReasoningFields,
    deepseek_reasoning,
    gemini_reasoning,
    groq_reasoning,
    no_reasoning,
    ollama_reasoning,
    openai_reasoning,
    openrouter_reasoning,
)
from ccproxy.schema import clean_schema, gemini_schema

__all__ = ["Profile", "PROFILES", "profile_for", "profile_named", "ReasoningFields", "Replay"]

Replay = Literal["reasoning_content", "reasoning", "reasoning_details", "thought_signature"]
"""How earlier reasoning goes back upstream (PROTOCOL.md H.4 replay):

C{reasoning_content}/C{reasoning}: the thinking text in that assistant-message field;
C{reasoning_details}: OpenRouter's structured array (plus the text as C{reasoning});
C{thought_signature}: Gemini's signatures on the matching C{tool_calls} entries."""

_OPENAI_REASONING = re.compile(r"^(?:openai/)?(?:gpt-5|o[1-9])", re.IGNORECASE)
_SESSION_UNSAFE = re.compile(r"[^\x21-\x7e]")


def _openai_sampling(model: str) -> bool:
    """OpenAI reasoning models reject non-default C{temperature}/C{top_p}."""
    return not _OPENAI_REASONING.match(model)


def _always(model: str) -> bool:
    return True


def _never(model: str) -> bool:
    return False


def _anthropic_model(model: str) -> bool:
    """OpenRouter honours C{cache_control} breakpoints for Claude models."""
    return model.lower().startswith("anthropic/")


def _no_headers(settings: Any) -> dict[str, str]:
    return {}


def _openrouter_headers(settings: Any) -> dict[str, str]:
    """OpenRouter attribution: C{HTTP-Referer} (app URL) and C{X-Title} (app name)."""
    headers = {}
    if settings.openrouter_app_url:
        headers["HTTP-Referer"] = settings.openrouter_app_url
    if settings.openrouter_app_name:
        headers["X-Title"] = settings.openrouter_app_name
    return headers


@frozen
class Profile:
    """How one provider dialect wants its requests.

    @ivar token_field: the body field for the output limit.
    @ivar mid_system: C{inline} keeps mid-conversation system messages as C{system}
        messages; C{fold} moves their text into the adjacent user message.
    @ivar reasoning: request fields for the client's thinking/effort settings.
    @ivar sampling: whether a model accepts C{temperature}/C{top_p}.
    @ivar replay: how earlier reasoning goes back upstream (L{Replay}), if at all.
    @ivar pdf_files: whether PDFs may be sent as C{file} parts.
    @ivar images: whether the provider reads images at all (else a text note).
    @ivar image_urls: whether remote image URLs are accepted (else a text note).
    @ivar id_rule: the provider's constraint on tool-call ids sent to it.
    @ivar tool_choice: whether to send C{tool_choice} (Ollama ignores it).
    @ivar parallel_tool_calls: whether to send C{parallel_tool_calls: false}.
    @ivar stream_usage: whether to send C{stream_options.include_usage} (Mistral
        rejects the field and always sends usage).
    @ivar merge_roles: merge consecutive user (and assistant) messages (PROTOCOL.md H.2
        step 6), for providers that require alternating roles.
    @ivar user_after_tool: whether a user message may directly follow tool messages;
        when not, its text joins the last tool message (Mistral).
    @ivar schema: tool input schema -> function C{parameters}.
    @ivar cache_control: whether a model gets Anthropic C{cache_control} breakpoints on
        system and user text parts (the system prompt is then an array of parts).
    @ivar session_field: the body field for Claude Code's session id, if any.
    @ivar session_limit: the longest session value that field takes.
    @ivar extra_headers: settings -> extra upstream headers.
    @ivar truncates_silently: the server drops the oldest messages when a prompt exceeds
        its context, without an error (Ollama): far fewer prompt tokens reported than
        sent is then logged as a warning.
    """

    name: str
    token_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    mid_system: Literal["inline", "fold"] = "fold"
    reasoning: ReasoningFields = no_reasoning
    sampling: Callable[[str], bool] = _always
    replay: Replay | None = None
    pdf_files: bool = False
    images: bool = True
    image_urls: bool = True
    id_rule: IdRule = ANY_ID
    tool_choice: bool = True
    parallel_tool_calls: bool = True
    stream_usage: bool = True
    merge_roles: bool = False
    user_after_tool: bool = True
    schema: Callable[[dict[str, Any] | None], dict[str, Any]] = clean_schema
    cache_control: Callable[[str], bool] = _never
    session_field: str | None = None
    session_limit: int = 64
    extra_headers: Callable[[Any], dict[str, str]] = _no_headers
    truncates_silently: bool = False

    def headers(self, settings: Any) -> dict[str, str]:
        """Extra upstream headers (OpenRouter attribution)."""
        return self.extra_headers(settings)

    def session_fields(self, session_id: str | None) -> dict[str, Any]:
        """The body field carrying Claude Code's session id (cache routing, stickiness).

        The header value is the client's: only printable ASCII is kept, cut to the
        field's limit.
        """
        if not self.session_field or not session_id:
            return {}
        value = _SESSION_UNSAFE.sub("", session_id)[: self.session_limit]
        return {self.session_field: value} if value else {}


PROFILES: Mapping[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile(
            "openai",
            token_field="max_completion_tokens",
            mid_system="inline",
            reasoning=openai_reasoning,
            sampling=_openai_sampling,
            pdf_files=True,
            id_rule=OPENAI_ID,
            session_field="prompt_cache_key",
        ),
        Profile(
            "openrouter",
            mid_system="inline",
            reasoning=openrouter_reasoning,
            pdf_files=True,
            replay="reasoning_details",
            cache_control=_anthropic_model,
            session_field="session_id",
            session_limit=256,
            extra_headers=_openrouter_headers,
        ),
        Profile(
            "ollama",
            reasoning=ollama_reasoning,
            image_urls=False,
            replay="reasoning",
            tool_choice=False,
            parallel_tool_calls=False,
            truncates_silently=True,
        ),
        Profile(
            "deepseek",
            reasoning=deepseek_reasoning,
            replay="reasoning_content",
            images=False,
            merge_roles=True,
        ),
        Profile(
            "gemini",
            reasoning=gemini_reasoning,
            replay="thought_signature",
            image_urls=False,
            parallel_tool_calls=False,
            schema=gemini_schema,
        ),
        Profile(
            "groq",
            token_field="max_completion_tokens",
            mid_system="inline",
            reasoning=groq_reasoning,
        ),
        Profile(
            "mistral",
            id_rule=MISTRAL_ID,
            stream_usage=False,
            merge_roles=True,
            user_after_tool=False,
        ),
        Profile("generic"),
    )
}

_HOSTS = (
    ("openrouter.ai", "openrouter"),
    ("api.openai.com", "openai"),
    ("api.deepseek.com", "deepseek"),
    ("generativelanguage.googleapis.com", "gemini"),
    ("api.groq.com", "groq"),
    ("api.mistral.ai", "mistral"),
    ("ollama", "ollama"),
)


def profile_named(name: str) -> Profile:
    """The profile called C{name}; unknown names get the generic profile."""
    return PROFILES.get(name.lower(), PROFILES["generic"])


def profile_for(base_url: str, override: str | None = None) -> Profile:
    """The profile for an upstream base URL, or the one named by C{override}."""
    if override:
        return profile_named(override)
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    for marker, name in _HOSTS:
        if marker in host:
            return PROFILES[name]
    if parts.port == 11434:
        return PROFILES["ollama"]
    return PROFILES["generic"]

"""Routing: which upstream model answers a requested Claude model name."""

from __future__ import annotations

from attrs import frozen

from ccproxy.config import Settings

__all__ = ["Router"]

_FAMILIES = ("opus", "sonnet", "haiku")


@frozen
class Router:
    """Maps Claude family names to upstream models; other names pass through.

    Claude Code sends ids such as C{claude-sonnet-4-5-20250929}; a name that contains a
    family word (any case) goes to the model configured for that family. Any other name
    (C{openai/gpt-5}, C{deepseek-chat}) is taken to be an upstream model already, so
    C{claude --model …} and C{/model …} reach any model the provider has.
    """

    opus: str
    sonnet: str
    haiku: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Router:
        """The router configured by C{ANTHROPIC_DEFAULT_*_MODEL}."""
        return cls(settings.opus_model, settings.sonnet_model, settings.haiku_model)

    def resolve(self, requested: str) -> str:
        """The upstream model for C{requested}."""
        lowered = requested.lower()
        for family in _FAMILIES:
            if family in lowered:
                return str(getattr(self, family))
        return requested

    def table(self) -> dict[str, str]:
        """The family table, for C{/health} and start-up logs."""
        return {"opus": self.opus, "sonnet": self.sonnet, "haiku": self.haiku}

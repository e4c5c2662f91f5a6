"""ccproxy: run Claude Code (or any Anthropic Messages client) on OpenAI-compatible providers."""

__version__ = "0.1.0"
__all__ = ["__version__"]

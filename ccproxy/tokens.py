# -*- test-case-name: tests.test_tokens -*-
"""
Input-token counts for Anthropic Messages requests.

Claude Code decides when to compact its context from the numbers we report (count_tokens, C{message_start}, and the
final usage when an upstream reports none; PROTOCOL.md D.1 and H.8), so an undercount can run a conversation past
the upstream model's window. Two text counters exist:

  - L{estimate_text_tokens} (L{ccproxy.estimator}): pure Python, no dependency, about 0.3 ms per 45 KB of new
    text and little more than hashing for texts seen before. A linear model over character classes and class-run
    starts, with weights fitted against o200k_base (within 7% of it per request on the test corpus).
  - o200k_base from the optional C{bpe-openai} package (C{pip install ccproxy[tokenizer]}): exact for OpenAI models,
    a close proxy for others, but slow to load (see L{TokenCounter.load}).

L{TokenCounter} holds the chosen one; the service builds it once and hands it to the resources.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs

from ccproxy import jsonio
from ccproxy.estimator import JoinedEstimate, estimate_text_tokens
from ccproxy.media import PDF_PAGE_TOKENS, image_tokens, pdf_pages

__all__ = ["TokenCounter", "BodyTexts", "PartText", "ToolText", "estimate_text_tokens", "message_text", "tool_text"]


# ---------------------------------------------------------------------------------------------------------------------
# The exact counter (optional dependency)
# ---------------------------------------------------------------------------------------------------------------------

# bpe-openai refuses one call over 1,000,000 characters or 200,000 tokens; no character costs more than 4 tokens.
_EXACT_CHUNK = 50_000


def _load_o200k() -> Callable[[str], int] | None:
    """Return an exact o200k_base counter, or L{None} when bpe-openai is not installed."""
    try:
        import bpe_openai  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        return None
    encode: Callable[[str], list[int]] = bpe_openai.get_encoding("o200k_base").encode_ordinary

    def count(text: str) -> int:
        # encode_ordinary: text that looks like a special token (<|endoftext|>) is counted as text, not refused.
        total = 0
        start = 0
        while start < len(text):
            end = start + _EXACT_CHUNK
            if end < len(text):
                # Cut after a newline so no word is split (splitting would overcount by a token or so).
                cut = text.rfind("\n", start + _EXACT_CHUNK // 2, end)
                end = cut + 1 if cut >= 0 else end
            total += len(encode(text[start:end]))
            start = end
        return total

    return count


# ---------------------------------------------------------------------------------------------------------------------
# Walking a request body
# ---------------------------------------------------------------------------------------------------------------------

# Chat-format framing that is not in any text: OpenAI's ChatML spends about 4 tokens per message
# (<|im_start|>role ... <|im_end|>) and primes the reply with 3 more. Tool definitions and tool calls carry JSON
# wrappers ({"type":"function","function":{...}}, call ids) that the upstream serializes around our texts.
_MESSAGE_TOKENS = 4
_REPLY_TOKENS = 3
_TOOL_TOKENS = 8
_TOOL_CALL_TOKENS = 8

# Blocks only an Anthropic server produces (web search results, code execution): ccproxy drops or summarises them.
_OPAQUE_BLOCK_TOKENS = 8
# Nested content (tool_result > document > content ...) deeper than this is ignored rather than recursed into.
_MAX_DEPTH = 6
_BILLING_PREFIX = "x-anthropic-billing-header:"


@attrs.define
class _RequestText:
    """Texts to tokenize plus the tokens already known without tokenizing (framing, images)."""

    texts: list[str] = attrs.Factory(list)
    fixed: int = 0
    tool_names: set[str] = attrs.Factory(set)

    def add(self, value: object) -> None:
        if isinstance(value, str) and value:
            self.texts.append(value)

    def add_json(self, value: object) -> None:
        # The same form the converter sends upstream as tool-call arguments (PROTOCOL.md H.2).
        try:
            self.texts.append(jsonio.dumps(value).decode("utf-8", "replace"))
        except TypeError:  # not JSON at all (a client sent something odd): count its repr
            self.texts.append(str(value))

    def add_content(self, content: object, depth: int = 0) -> None:
        """Add a C{content} value: a string or a list of blocks."""
        if isinstance(content, str):
            self.add(content)
        elif isinstance(content, list) and depth < _MAX_DEPTH:
            for block in content:
                if isinstance(block, dict):
                    self.add_block(block, depth + 1)

    def add_block(self, block: dict[str, Any], depth: int) -> None:
        kind = block.get("type")
        if kind == "text":
            self.add(block.get("text"))
        elif kind == "thinking":
            self.add(block.get("thinking"))
        elif kind == "redacted_thinking":
            pass  # opaque to every upstream
        elif kind in ("tool_use", "server_tool_use"):
            name = block.get("name")
            if isinstance(name, str):
                self.tool_names.add(name)
            self.add(name)
            self.add_json(block.get("input", {}))
            self.fixed += _TOOL_CALL_TOKENS
        elif kind == "tool_result":
            # Becomes its own "tool" message upstream.
            self.fixed += _MESSAGE_TOKENS
            self.add_content(block.get("content"), depth)
        elif kind == "image":
            self.fixed += image_tokens(block.get("source"))
        elif kind == "document":
            self.add(block.get("title"))
            self.add(block.get("context"))
            self._add_document_source(block.get("source"), depth)
        elif kind == "search_result":
            self.add(block.get("source"))
            self.add(block.get("title"))
            self.add_content(block.get("content"), depth)
        elif kind == "tool_reference":
            name = block.get("tool_name")
            if isinstance(name, str):
                self.tool_names.add(name)
                self.add(f"Tool '{name}' loaded.")
        elif kind == "mid_conv_system":
            self.add_content(block.get("content"), depth)
        else:
            self.fixed += _OPAQUE_BLOCK_TOKENS

    def _add_document_source(self, source: object, depth: int) -> None:
        if not isinstance(source, dict):
            return
        kind = source.get("type")
        if kind == "text":
            self.add(source.get("data"))
        elif kind == "content":
            self.add_content(source.get("content"), depth)
        elif kind == "base64":
            self.fixed += PDF_PAGE_TOKENS * pdf_pages(source.get("data"))
        else:
            self.fixed += PDF_PAGE_TOKENS


@attrs.frozen
class PartText:
    """What one message or tool definition adds to a request's count, on its own.

    @ivar text: its texts joined with newlines, as the counter joins a request's texts (None when it has none).
        One string per part rather than its pieces: the estimator stitches texts together exactly, and a part
        remembered across requests (L{ccproxy.parts}) keeps the same string, whose hash Python keeps too.
    @ivar fixed: tokens known without tokenizing (framing, images).
    @ivar tool_names: the tools it calls or loads (a deferred tool counts only once one of these names it).
    """

    text: str | None
    fixed: int
    tool_names: frozenset[str] = frozenset()

    @classmethod
    def of(cls, found: _RequestText) -> PartText:
        return cls("\n".join(found.texts) if found.texts else None, found.fixed, frozenset(found.tool_names))


@attrs.frozen
class ToolText:
    """One tool definition's part of the count, and whether it counts only once loaded (C{defer_loading})."""

    name: object
    deferred: bool
    part: PartText


def message_text(message: object) -> PartText:
    """What one entry of C{messages} adds to the count (nothing, if it is not an object)."""
    if not isinstance(message, dict):
        return PartText(None, 0)
    found = _RequestText(fixed=_MESSAGE_TOKENS)
    found.add_content(message.get("content"))
    return PartText.of(found)


def tool_text(tool: object) -> ToolText | None:
    """What one entry of C{tools} adds to the count once it reaches the model (None if it is not an object)."""
    if not isinstance(tool, dict):
        return None
    found = _RequestText(fixed=_TOOL_TOKENS)
    name = tool.get("name")
    found.add(name)
    found.add(tool.get("description"))
    if "input_schema" in tool:
        found.add_json(tool["input_schema"])
    return ToolText(name, bool(tool.get("defer_loading")), PartText.of(found))


@attrs.frozen
class BodyTexts:
    """The counting parts of a body's C{messages} and C{tools}, one per entry (see L{ccproxy.parts})."""

    messages: tuple[PartText, ...]
    tools: tuple[ToolText | None, ...]

    @classmethod
    def of(cls, body: dict[str, Any]) -> BodyTexts:
        messages = body.get("messages")
        tools = body.get("tools")
        return cls(
            tuple(message_text(m) for m in messages) if isinstance(messages, list) else (),
            tuple(tool_text(t) for t in tools) if isinstance(tools, list) else (),
        )


def _collect(body: dict[str, Any], parts: BodyTexts) -> _RequestText:
    """Gather the texts and fixed token costs of a Messages request body."""
    found = _RequestText(fixed=_REPLY_TOKENS)
    system = body.get("system")
    if isinstance(system, str) and system:
        found.fixed += _MESSAGE_TOKENS
        found.add(system)
    elif isinstance(system, list) and system:
        found.fixed += _MESSAGE_TOKENS
        for block in system:
            # The attribution block is dropped before the request goes upstream (PROTOCOL.md H.1).
            if isinstance(block, dict) and not str(block.get("text", "")).startswith(_BILLING_PREFIX):
                found.add(block.get("text"))
    for message in parts.messages:
        found.fixed += message.fixed
        if message.text is not None:
            found.texts.append(message.text)
        found.tool_names.update(message.tool_names)
    for tool in parts.tools:
        # Deferred tools reach the model only once a tool_reference or a call names them (PROTOCOL.md H.3).
        if tool is None or (tool.deferred and tool.name not in found.tool_names):
            continue
        found.fixed += tool.part.fixed
        if tool.part.text is not None:
            found.texts.append(tool.part.text)
    return found


# ---------------------------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------------------------


@attrs.frozen
class TokenCounter:
    """
    Counts request tokens with one text counter, chosen once.

    An object rather than a hidden global: loading the exact tokenizer costs about a second and 130 MB, so the
    service decides when that happens (after twistd forks, not at import) and hands the counter to the resources;
    tests pass their own.

    @ivar exact: whether counts come from the o200k_base tokenizer rather than the estimator.
    """

    _text_counter: Callable[[str], int] = estimate_text_tokens
    exact: bool = False
    # The estimator remembers what it has counted (see JoinedEstimate); other counters count every time.
    _joined: JoinedEstimate | None = attrs.field(
        init=False,
        eq=False,
        repr=False,
        default=attrs.Factory(
            lambda self: JoinedEstimate() if self._text_counter is estimate_text_tokens else None, takes_self=True
        ),
    )

    @classmethod
    def load(cls, *, exact: bool = True) -> TokenCounter:
        """
        Build a counter: the exact one when asked for and bpe-openai is installed, else the estimator.

        Importing bpe-openai takes about a second and ~130 MB of memory (it parses its tables at import), so call
        this once at start-up.
        """
        if exact:
            text_counter = _load_o200k()
            if text_counter is not None:
                return cls(text_counter, exact=True)
        return cls()

    def count_text(self, text: str) -> int:
        """Count the tokens of one string."""
        return self._text_counter(text) if text else 0

    def count_texts(self, texts: Iterable[str]) -> int:
        """Count several strings as one newline-separated text (one tokenizer call)."""
        if self._joined is not None:
            return self._joined(texts)
        return self.count_text("\n".join(texts))

    def count_request(self, body: dict[str, Any], parts: BodyTexts | None = None) -> int:
        """
        Count the input tokens of an Anthropic Messages (or count_tokens) request body, as the client sent it.

        Covers system, messages (text, tool calls and results, thinking, documents, images) and tools, plus the
        chat-format framing an OpenAI-compatible upstream adds. Malformed parts are skipped, never raised on.

        @param parts: the body's messages and tools already gathered (remembered across requests by
            L{ccproxy.parts}); gathered here when not given.
        @return: at least 1, so Claude Code never sees an empty context.
        """
        found = _collect(body, BodyTexts.of(body) if parts is None else parts)
        return max(1, found.fixed + self.count_texts(found.texts))

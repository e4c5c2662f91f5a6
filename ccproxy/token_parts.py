# -*- test-case-name: tests.test_tokens -*-
"""
What each part of an Anthropic Messages request adds to its input-token count (L{ccproxy.tokens}).

A request is counted as the texts an OpenAI-compatible upstream tokenizes, in the order they reach it (system
prompt, messages, tool definitions), plus the tokens known without tokenizing: the chat format's framing, images,
PDF pages and blocks only an Anthropic server produces. A message's or tool's part is the same whatever else the
request holds, so L{ccproxy.parts} gathers it once per distinct message or tools list and hands out the same part
again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from typing import Any

import attrs

from ccproxy import jsonio
from ccproxy.media import PDF_PAGE_TOKENS, image_tokens, pdf_pages

__all__ = [
    "BodyTexts",
    "RequestText",
    "PartText",
    "ToolText",
    "message_text",
    "tool_text",
    "system_text",
    "counted_tools",
    "collect",
    "MESSAGE_TOKENS",
    "REPLY_TOKENS",
    "TOOL_TOKENS",
    "TOOL_CALL_TOKENS",
    "OPAQUE_BLOCK_TOKENS",
    "BILLING_PREFIX",
]

# Chat-format framing that is not in any text: OpenAI's ChatML spends about 4 tokens per message
# (<|im_start|>role ... <|im_end|>) and primes the reply with 3 more. Tool definitions and tool calls carry JSON
# wrappers ({"type":"function","function":{...}}, call ids) that the upstream serializes around our texts.
MESSAGE_TOKENS = 4
REPLY_TOKENS = 3
TOOL_TOKENS = 8
TOOL_CALL_TOKENS = 8

# Blocks only an Anthropic server produces (web search results, code execution): ccproxy drops or summarises them.
OPAQUE_BLOCK_TOKENS = 8
# Nested content (tool_result > document > content ...) deeper than this is ignored rather than recursed into.
_MAX_DEPTH = 6
BILLING_PREFIX = "x-anthropic-billing-header:"


@attrs.define
class RequestText:
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
            self.fixed += TOOL_CALL_TOKENS
        elif kind == "tool_result":
            # Becomes its own "tool" message upstream.
            self.fixed += MESSAGE_TOKENS
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
            self.fixed += OPAQUE_BLOCK_TOKENS

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
    def of(cls, found: RequestText) -> PartText:
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
    found = RequestText(fixed=MESSAGE_TOKENS)
    found.add_content(message.get("content"))
    return PartText.of(found)


def tool_text(tool: object) -> ToolText | None:
    """What one entry of C{tools} adds to the count once it reaches the model (None if it is not an object)."""
    if not isinstance(tool, dict):
        return None
    found = RequestText(fixed=TOOL_TOKENS)
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


def system_text(body: dict[str, Any]) -> RequestText:
    """The texts and fixed token costs of a body's system prompt, and of the answer's priming."""
    found = RequestText(fixed=REPLY_TOKENS)
    system = body.get("system")
    if isinstance(system, str) and system:
        found.fixed += MESSAGE_TOKENS
        found.add(system)
    elif isinstance(system, list) and system:
        found.fixed += MESSAGE_TOKENS
        for block in system:
            # The attribution block is dropped before the request goes upstream (PROTOCOL.md H.1).
            if isinstance(block, dict) and not str(block.get("text", "")).startswith(BILLING_PREFIX):
                found.add(block.get("text"))
    return found


def counted_tools(tools: Iterable[ToolText | None], named: AbstractSet[str]) -> Iterator[PartText]:
    """The tool definitions that reach the model: deferred ones only once a message names them (PROTOCOL.md H.3)."""
    for tool in tools:
        if tool is not None and not (tool.deferred and tool.name not in named):
            yield tool.part


def collect(body: dict[str, Any], parts: BodyTexts) -> RequestText:
    """Gather the texts and fixed token costs of a Messages request body, in the order they go upstream."""
    found = system_text(body)
    for message in parts.messages:
        found.fixed += message.fixed
        if message.text is not None:
            found.texts.append(message.text)
        found.tool_names.update(message.tool_names)
    for part in counted_tools(parts.tools, found.tool_names):
        found.fixed += part.fixed
        if part.text is not None:
            found.texts.append(part.text)
    return found

# -*- test-case-name: tests.test_tokens -*-
"""
Input-token counts for Anthropic Messages requests.

Claude Code decides when to compact its context from the numbers we report (count_tokens, C{message_start}, and the
final usage when an upstream reports none; PROTOCOL.md D.1 and H.8), so an undercount can run a conversation past
the upstream model's window. Two text counters exist:

  - L{estimate_text_tokens}: pure Python, no dependency, about 0.3 ms per 45 KB of text. A linear model over
    character classes and class-run starts, with weights fitted against o200k_base (within 7% of it per request
    on the test corpus).
  - o200k_base from the optional C{bpe-openai} package (C{pip install ccproxy[tokenizer]}): exact for OpenAI models,
    a close proxy for others, but slow to load (see L{TokenCounter.load}).

L{TokenCounter} holds the chosen one; the service builds it once and hands it to the resources.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from ccproxy import jsonio
from ccproxy.media import PDF_PAGE_TOKENS, image_tokens, pdf_pages

__all__ = ["TokenCounter", "estimate_text_tokens"]


# ---------------------------------------------------------------------------------------------------------------------
# The estimator
# ---------------------------------------------------------------------------------------------------------------------
#
# Every code point gets a class id (1-14) from its UTF-8 lead byte, so one bytes.translate classifies the whole text
# and deletes continuation bytes. o200k_base splits text into pieces at class changes (a word, a number, a run of
# punctuation, a newline run), so the model is: a weight per character of each class, plus a weight for each
# character that starts a run of its class.
#
# Run starts are found without a Python loop: the class bytes become one big int, XOR with itself shifted by one
# byte gives (class ^ previous class) per byte, and that value is OR-ed into the high nibble. Each byte then names
# (previous class, class), and a second translate turns it into a weight in 1/_SCALE tokens. The weights are summed
# in C with Adler-32, whose low half is the byte sum modulo 65521 (RFC 1950), over chunks short enough never to wrap.

_LOWER, _UPPER, _DIGIT, _PUNCT, _SPACE, _TAB, _NEWLINE = 1, 2, 3, 4, 5, 6, 7
_ALPHA_2B = 8  # U+0080-U+07FF: accented Latin, Greek, Cyrillic, Hebrew, Arabic
_MISC_BMP = 9  # U+0800-U+2FFF: Indic, Thai, general punctuation, arrows, box drawing
_KANA = 10  # U+3000-U+3FFF: CJK punctuation, hiragana, katakana
_HAN = 11  # U+4000-U+9FFF: CJK unified ideographs
_HANGUL = 12  # U+A000-U+DFFF: Hangul syllables (and Yi, lone surrogates)
_FULLWIDTH = 13  # U+E000-U+FFFF: private use, CJK compatibility, fullwidth forms such as "，"
_ASTRAL = 14  # U+10000 and up: emoji, rare ideographs

# Weights, in tokens, fitted by non-negative least squares against o200k_base on ~2 MB of text that shares nothing
# with tests/fixtures/tokens (which is therefore a held-out test set): CPython stdlib source, pydoc topics, the Rust
# book, C headers, shell scripts, JSON schemas, JavaScript, Vim docs and tutors, Japanese man pages, gettext
# catalogues (zh, ja, ko, ru, de, fr, hi, th, ar, he), and synthetic `tree` output and emoji-laden status lines.
# Relative error per sample, each category weighted equally. Weights of 0 are real: o200k_base folds a single
# space into the next word, and a newline's cost sits on the first newline of a run.
_CHAR_WEIGHTS = {
    _LOWER: 0.0648,
    _UPPER: 0.1472,
    _DIGIT: 0.5465,
    _PUNCT: 0.1753,
    _SPACE: 0.0,
    _TAB: 0.3311,
    _NEWLINE: 0.0,
    _ALPHA_2B: 0.0844,
    _MISC_BMP: 0.307,
    _KANA: 0.3296,
    _HAN: 0.5833,
    _HANGUL: 0.0,
    _FULLWIDTH: 0.0616,
    _ASTRAL: 0.0,
}
_START_WEIGHTS = {
    _LOWER: 0.6231,
    _UPPER: 0.6231,
    _DIGIT: 0.6662,
    _PUNCT: 0.4441,
    _SPACE: 0.0,
    _TAB: 0.0,
    _NEWLINE: 2.6282,
    _ALPHA_2B: 1.2245,
    _MISC_BMP: 0.5245,
    _KANA: 0.5779,
    _HAN: 1.3381,
    _HANGUL: 1.9727,
    _FULLWIDTH: 0.0,
    _ASTRAL: 1.3262,
}

# Upper and lower case letters form one run: o200k_base keeps "Hello" in one piece.
_RUN_GROUP = {cls: (_LOWER if cls == _UPPER else cls) for cls in range(16)}

_SCALE = 64
_UTF8_CONTINUATION = bytes(range(0x80, 0xC0))


def _class_table() -> bytes:
    """Map each byte (ASCII character or UTF-8 lead byte) to its class id."""
    table = bytearray([_PUNCT]) * 256
    for byte in range(256):
        char = chr(byte)
        if byte >= 0x80:
            # 0x80-0xBF are continuation bytes (deleted before lookup); 0xC0, 0xC1, 0xF5+ never occur in UTF-8.
            for limit, cls in ((0xE0, _ALPHA_2B), (0xE3, _MISC_BMP), (0xE4, _KANA), (0xEA, _HAN), (0xEE, _HANGUL),
                               (0xF0, _FULLWIDTH), (0x100, _ASTRAL)):
                if byte < limit:
                    table[byte] = cls
                    break
        elif "a" <= char <= "z":
            table[byte] = _LOWER
        elif "A" <= char <= "Z":
            table[byte] = _UPPER
        elif "0" <= char <= "9":
            table[byte] = _DIGIT
        elif char == " ":
            table[byte] = _SPACE
        elif char in "\t\v\f":
            table[byte] = _TAB
        elif char in "\r\n":
            table[byte] = _NEWLINE
    return bytes(table)


def _weight_table() -> bytes:
    """Map a (previous class ^ class) << 4 | class byte to the character's weight in 1/_SCALE tokens."""
    table = bytearray(256)
    for cls in range(1, 15):
        for previous in range(15):
            weight = _CHAR_WEIGHTS[cls]
            if _RUN_GROUP[previous] != _RUN_GROUP[cls]:
                weight += _START_WEIGHTS[cls]
            table[(previous ^ cls) << 4 | cls] = round(weight * _SCALE)
    return bytes(table)


_CLASSES = _class_table()
_WEIGHTS = _weight_table()
# Longest chunk whose byte sum stays below the Adler-32 modulus.
_SUM_CHUNK = 65520 // max(_WEIGHTS)


def _byte_sum(data: bytes) -> int:
    """
    Sum the bytes of C{data} in C.

    C{sum(data)} iterates per byte in the interpreter: slower than the whole estimator.
    """
    view = memoryview(data)
    return sum(zlib.adler32(view[i : i + _SUM_CHUNK], 0) & 0xFFFF for i in range(0, len(view), _SUM_CHUNK))


def estimate_text_tokens(text: str) -> int:
    """
    Estimate the o200k_base token count of C{text} without a tokenizer.

    Within 7% of o200k_base per request on tests/fixtures/tokens. A single 2-10 KB text of one kind varies more:
    mostly within 10%, worst about -20% (box-drawing `tree` output). See bench/tokens_accuracy.py.

    @return: 0 for an empty string, otherwise at least 1.
    """
    if not text:
        return 0
    classes = text.encode("utf-8", "surrogatepass").translate(_CLASSES, _UTF8_CONTINUATION)
    as_int = int.from_bytes(classes, "little")
    with_previous = as_int | (as_int ^ (as_int << 8)) << 4
    weights = with_previous.to_bytes(len(classes) + 1, "little").translate(_WEIGHTS)
    return max(1, (_byte_sum(weights) + _SCALE // 2) // _SCALE)


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


def _collect(body: dict[str, Any]) -> _RequestText:
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
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if isinstance(message, dict):
            found.fixed += _MESSAGE_TOKENS
            found.add_content(message.get("content"))
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else ():
        if not isinstance(tool, dict):
            continue
        name = tool.get("name")
        # Deferred tools reach the model only once a tool_reference or a call names them (PROTOCOL.md H.3).
        if tool.get("defer_loading") and name not in found.tool_names:
            continue
        found.fixed += _TOOL_TOKENS
        found.add(name)
        found.add(tool.get("description"))
        if "input_schema" in tool:
            found.add_json(tool["input_schema"])
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
        return self.count_text("\n".join(texts))

    def count_request(self, body: dict[str, Any]) -> int:
        """
        Count the input tokens of an Anthropic Messages (or count_tokens) request body, as the client sent it.

        Covers system, messages (text, tool calls and results, thinking, documents, images) and tools, plus the
        chat-format framing an OpenAI-compatible upstream adds. Malformed parts are skipped, never raised on.

        @return: at least 1, so Claude Code never sees an empty context.
        """
        found = _collect(body)
        return max(1, found.fixed + self.count_texts(found.texts))

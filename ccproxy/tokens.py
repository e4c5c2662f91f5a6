# -*- test-case-name: tests.test_tokens -*-
"""
Input-token counts for Anthropic Messages requests.

Claude Code decides when to compact its context from the numbers we report (count_tokens, C{message_start}, and the
final usage when an upstream reports none; PROTOCOL.md D.1 and H.8), so an undercount can run a conversation past
the upstream model's window. Two text counters exist:

  - L{estimate_text_tokens} (L{ccproxy.estimator}): pure Python, no dependency, about 0.3 ms per 45 KB of new
    text and little more than hashing for texts seen before. A linear model over character classes and class-run
    starts, with weights fitted against o200k_base (within 7% of it per request on the test corpus). Its sums
    join, so a turn of a conversation counts its new messages only (L{_Estimator}).
  - o200k_base from the optional C{bpe-openai} package (C{pip install ccproxy[tokenizer]}): exact for OpenAI models,
    a close proxy for others, but slow to load (see L{TokenCounter.load}).

L{TokenCounter} holds the chosen one; the service builds it once and hands it to the resources. What each part of a
request adds to the count is L{ccproxy.token_parts}.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs

from ccproxy.estimator import NO_TEXT, Summaries, Summary, estimate_text_tokens, joined, summary_tokens
from ccproxy.prefixes import KEEP, PrefixMemo
from ccproxy.token_parts import BodyTexts, PartText, collect, counted_tools, system_text

__all__ = ["TokenCounter", "estimate_text_tokens"]


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
# The estimator, resumed
# ---------------------------------------------------------------------------------------------------------------------


@attrs.frozen
class _Tally:
    """What a conversation's first messages add to the estimate: their texts' summary, their fixed
    tokens and the tools they name (what a deferred tool's count depends on)."""

    summary: Summary
    fixed: int
    named: frozenset[str]


_NOTHING_TALLIED = _Tally(NO_TEXT, 0, frozenset())
# How many conversations' tallies are remembered (L{ccproxy.prefixes}; a tally is three numbers and a small set,
# a line a weak reference per message).
_TALLY_LINES = 32


class _Estimator:
    """The estimator's count of a request, resuming each conversation's tally of its messages where the
    previous turn's stopped (L{ccproxy.prefixes}): the parts of a request's remembered messages are the same
    objects each turn (L{ccproxy.parts}), so a turn sums the summaries of its new messages only."""

    def __init__(self) -> None:
        self._summaries = Summaries()
        self._tallies: PrefixMemo[_Tally] = PrefixMemo(lambda tally, before: 0, 0, _TALLY_LINES)

    def request(self, body: dict[str, Any], parts: BodyTexts | None) -> int:
        """The count of C{body}; its tally resumed and remembered when its C{parts} come from the parts memo."""
        remember = parts is not None  # the parts memo's: the same objects again next turn
        if parts is None:
            parts = BodyTexts.of(body)
        summary_of = self._summaries
        opening = system_text(body)
        summary = NO_TEXT
        for text in opening.texts:
            summary = joined(summary, summary_of(text))
        tally = self._tally(parts.messages, remember)
        summary = joined(summary, tally.summary)
        fixed = opening.fixed + tally.fixed
        for part in counted_tools(parts.tools, tally.named):
            fixed += part.fixed
            if part.text is not None:
                summary = joined(summary, summary_of(part.text))
        return max(1, fixed + summary_tokens(summary))

    def _tally(self, messages: tuple[PartText, ...], remember: bool) -> _Tally:
        """The tally of C{messages}; those of their last L{KEEP} starts remembered when C{remember} (the parts
        are the parts memo's, which keeps them alive and hands out the same ones again)."""
        resumed = self._tallies.resume(messages) if remember else None
        start, tally = (resumed.length, resumed.state) if resumed is not None else (0, _NOTHING_TALLIED)
        summary, fixed, named = tally.summary, tally.fixed, tally.named
        summary_of = self._summaries
        states: dict[int, _Tally] = {}
        keep_from = len(messages) - KEEP if remember else len(messages)
        for index in range(start, len(messages)):
            part = messages[index]
            fixed += part.fixed
            if part.text is not None:
                summary = joined(summary, summary_of(part.text))
            if part.tool_names and not part.tool_names <= named:
                named = named | part.tool_names
            if index >= keep_from:
                states[index + 1] = _Tally(summary, fixed, named)
        if remember:
            self._tallies.remember(messages, states, resumed)
        return states[len(messages)] if states else _Tally(summary, fixed, named)


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
    # The estimator remembers what it has counted (see _Estimator); other counters count every time.
    _estimator: _Estimator | None = attrs.field(
        init=False,
        eq=False,
        repr=False,
        default=attrs.Factory(
            lambda self: _Estimator() if self._text_counter is estimate_text_tokens else None, takes_self=True
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
        return self.count_text("\n".join(texts))

    def count_request(self, body: dict[str, Any], parts: BodyTexts | None = None) -> int:
        """
        Count the input tokens of an Anthropic Messages (or count_tokens) request body, as the client sent it.

        Covers system, messages (text, tool calls and results, thinking, documents, images) and tools, plus the
        chat-format framing an OpenAI-compatible upstream adds. Malformed parts are skipped, never raised on.

        @param parts: the body's messages and tools already gathered (remembered across requests by
            L{ccproxy.parts}, and then counted from where the conversation's previous turn stopped);
            gathered here when not given.
        @return: at least 1, so Claude Code never sees an empty context.
        """
        if self._estimator is not None:
            return self._estimator.request(body, parts)
        found = collect(body, BodyTexts.of(body) if parts is None else parts)
        return max(1, found.fixed + self.count_texts(found.texts))

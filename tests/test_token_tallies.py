"""The estimator's count resumed where a conversation's previous turn stopped (ccproxy.tokens,
ccproxy.estimator summaries, ccproxy.prefixes): always the count of the whole request."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccproxy import estimator
from ccproxy.parts import Parts, RequestParts
from ccproxy.tokens import TokenCounter, estimate_text_tokens
from tests.convert.helpers import anthropic_body
from tests.convert.test_request import MESSAGES
from tests.convert.test_walks import _as_sent, _turns

_TEXTS = st.lists(
    st.one_of(st.sampled_from(["\n", "a", "A1", "\n\nx\n", "hello world\n", "  ", "日本", "é", "{}"]), st.text(min_size=1)),
    max_size=10,
)

TOOLS = [
    {"name": "Bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {"c": {}}}},
    {"name": "Read", "description": "Read a file", "input_schema": {"type": "object"}, "defer_loading": True},
    {"name": "Grep", "description": "Search files", "input_schema": {"type": "object"}, "defer_loading": True},
]
# Ends with a newline and the messages do not: the order of the parts then changes the estimate
# (a newline after a newline is free, after a letter it starts a run).
SYSTEM = [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2"},
          {"type": "text", "text": "You are Claude Code."}, {"type": "text", "text": "Be brief.\n"}]


def reference(body: dict[str, Any]) -> int:
    """The count of C{body} as a text counter other than the estimator makes it: every text of the
    request gathered and joined, then counted once (the same numbers as the estimator's)."""
    return TokenCounter(lambda text: estimate_text_tokens(text)).count_request(body)


class Proxy:
    """A proxy's parts memo and token counter, as the daemon uses them."""

    def __init__(self) -> None:
        self.parts = RequestParts()
        self.counter = TokenCounter()
        self.resumed: list[int] = []  # messages resumed over, per count

    def split(self, body: dict[str, Any]) -> Parts:
        split = self.parts.split(json.loads(json.dumps(body)))
        assert split is not None
        return split

    def count(self, body: dict[str, Any]) -> int:
        split = self.split(body)
        tallies = self.counter._estimator._tallies  # type: ignore[union-attr]
        found = tallies.resume(split.texts.messages)
        self.resumed.append(found.length if found is not None else 0)
        return self.counter.count_request(split.counted, split.texts)


def _request(messages: list[Any], **fields: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 1024, "system": SYSTEM, "messages": messages, **fields}


@given(_TEXTS, st.lists(st.integers(0, 10), max_size=4))
def test_summaries_join_in_any_grouping_to_the_estimate_of_the_joined_text(texts: list[str], cuts: list[int]) -> None:
    """Summaries of groups of texts, joined, give exactly the estimate of all the texts joined with
    newlines: how a request's count is put together from its system prompt, its conversation's
    remembered tally, its new messages and its tools."""
    summaries = estimator.Summaries()
    bounds = sorted({0, len(texts), *(min(cut, len(texts)) for cut in cuts)})
    total = estimator.NO_TEXT
    for start, end in zip(bounds, bounds[1:]):
        group = estimator.NO_TEXT
        for text in texts[start:end]:
            group = estimator.joined(group, summaries(text))
        total = estimator.joined(total, group)
    assert estimator.summary_tokens(total) == estimate_text_tokens("\n".join(texts))


def test_each_turn_of_a_growing_conversation_counts_its_new_messages_only() -> None:
    """Claude Code moves its prompt cache mark to the new last message: each turn resumes before
    the previous turn's last message, and counts what the whole request counts."""
    proxy = Proxy()
    conversation = _turns(8)
    for end in range(1, len(conversation) + 1, 2):
        body = _request(_as_sent(conversation[:end]), tools=TOOLS)
        assert proxy.count(body) == reference(body)
        assert proxy.count(body) == reference(body)  # a retry resumes after its last message
    assert proxy.resumed[2::2] == [end - 3 for end in range(3, len(conversation) + 1, 2)]
    assert proxy.resumed[1::2] == list(range(1, len(conversation) + 1, 2))


def test_a_deferred_tool_named_by_a_new_message_is_counted() -> None:
    """Whether a deferred tool reaches the model depends on every message: the tally carries the
    names its messages use."""
    proxy = Proxy()
    first = [{"role": "user", "content": "find it"}]
    loaded = [*first, {"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_1", "name": "ToolSearch", "input": {"query": "grep"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": [{"type": "tool_reference", "tool_name": "Grep"}]}]}]
    called = [*loaded, {"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_2", "name": "Read", "input": {"file_path": "a.py"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_2", "content": "print(1)"}]},
        {"role": "assistant", "content": "done"}, {"role": "user", "content": "thanks"}]
    counts = []
    for messages in (first, loaded, called, called):
        body = _request(messages, tools=TOOLS)
        counts.append(proxy.count(body))
        assert counts[-1] == reference(body)
    assert proxy.resumed[2:] == [len(loaded), len(called)]  # the last turns were counted from a tally
    without_tools = reference(_request(called))
    assert counts[2] - without_tools == reference(_request(called, tools=TOOLS)) - without_tools > 0


@pytest.mark.parametrize("fixture", ["cc_parallel_results.json", "cc_tool_search.json", "interrupted_turn.json",
                                     "images.json", "documents.json", "mcp_long_name.json", "orphan_tool_result.json",
                                     "cc_merged_turns_is_error.json", "cc_provider_turn.json"])
def test_every_start_of_a_recorded_conversation_counts_as_the_whole_request(fixture: str) -> None:
    body = anthropic_body(fixture)
    proxy = Proxy()
    messages = body["messages"]
    for end in [*range(1, len(messages) + 1), len(messages), 1, len(messages)]:
        turn = {**body, "messages": messages[:end]}
        assert proxy.count(turn) == reference(turn)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(earlier=MESSAGES, later=MESSAGES, fork=st.integers(0, 8), system=st.sampled_from([None, "", "Be brief.", SYSTEM]),
       tools=st.sampled_from([[], TOOLS]))
def test_property_a_resumed_count_is_the_count_of_the_whole_request(
    earlier: list[Any], later: list[Any], fork: int, system: Any, tools: list[Any]
) -> None:
    """Whatever conversations came before (a shorter one, a fork of it, another system prompt), a
    request counts exactly what it counts with nothing remembered."""
    proxy = Proxy()
    for messages in (earlier, earlier + later, earlier[:fork] + later, earlier + later, earlier):
        body = {"model": "m", "max_tokens": 10, "messages": messages, "tools": tools}
        if system is not None:
            body["system"] = system
        assert proxy.count(body) == reference(body)


def test_a_request_without_remembered_parts_is_counted_without_the_memo() -> None:
    """A body counted on its own (count_tokens, debug mode) has parts made for it alone: nothing
    to resume from later, so nothing is remembered."""
    counter = TokenCounter()
    body = _request(_turns(3), tools=TOOLS)
    assert counter.count_request(body) == reference(body)
    assert len(counter._estimator._tallies) == 0  # type: ignore[union-attr]

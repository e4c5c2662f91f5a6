"""The message walk resumed where the conversation's previous turn left it (ccproxy.convert.walks)."""

from __future__ import annotations

import copy
import gc
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ccproxy import jsonio
from ccproxy.anthropic import Message
from ccproxy.convert.request import Conversion, convert_request
from ccproxy.convert.walks import KEEP, LOOKBACK, WalkMemo, WalkState, _message_weight
from ccproxy.openai import ChatMessage, ImagePart, TextPart, to_dict, to_json, wire_payload
from ccproxy.parts import RequestParts
from ccproxy.providers import PROFILES, Profile
from tests.convert.helpers import anthropic_body
from tests.convert.test_request import MESSAGES, unique_tool_use_ids

MODEL = "test/model"


def _request(messages: list[Any], **fields: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": messages, **fields}


def _turns(count: int) -> list[dict[str, Any]]:
    """A Claude Code conversation of C{count} tool turns after its first prompt."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": [{"type": "text", "text": "look around"}]}]
    for turn in range(count):
        call = {"type": "tool_use", "id": f"toolu_{turn:02d}", "name": "Bash", "input": {"command": f"ls {turn}"}}
        result = {"type": "tool_result", "tool_use_id": f"toolu_{turn:02d}", "content": f"file{turn}"}
        messages += [{"role": "assistant", "content": [{"type": "text", "text": "Looking."}, call]},
                     {"role": "user", "content": [result]}]
    return messages


def _as_sent(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """C{messages} as Claude Code sends them: the last block of the last message marked for prompt
    caching (the mark moves to the new last message with each turn)."""
    sent = copy.deepcopy(messages)
    last = sent[-1]["content"][-1]
    last["cache_control"] = {"type": "ephemeral"}
    return sent


class Converter:
    """A proxy's two memos, and the conversion the daemon makes with them."""

    def __init__(self) -> None:
        self.parts = RequestParts()
        self.walks = WalkMemo()

    def convert(self, body: dict[str, Any], profile: Profile, model: str = MODEL) -> Conversion:
        split = self.parts.split(json.loads(json.dumps(body)))
        assert split is not None
        return convert_request(split.request, model, profile, "session", self.walks)

    def messages(self, body: dict[str, Any]) -> list[Message]:
        split = self.parts.split(json.loads(json.dumps(body)))
        assert split is not None
        return split.request.messages


def _fresh(body: dict[str, Any], profile: Profile, model: str = MODEL) -> Conversion:
    split = RequestParts().split(json.loads(json.dumps(body)))
    assert split is not None
    return convert_request(split.request, model, profile, "session")


def assert_same(resumed: Conversion, fresh: Conversion) -> None:
    """What the upstream gets, and what the answer is mapped back with, are those of a fresh walk."""
    assert to_json(resumed.request) == to_json(fresh.request)
    assert resumed.names == fresh.names
    assert resumed.ids.learned() == fresh.ids.learned()
    assert resumed.dropped_tools == fresh.dropped_tools


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_each_turn_converts_as_a_fresh_walk_and_walks_only_its_new_messages(profile: str) -> None:
    """Each turn resumes before the previous turn's last message, which comes back without its
    prompt cache mark: a different message."""
    converter = Converter()
    conversation = _turns(6)
    for end in range(1, len(conversation) + 1, 2):
        body = _request(_as_sent(conversation[:end]))
        messages = converter.messages(body)
        resumed = converter.walks.resume(messages, MODEL, PROFILES[profile])
        assert (resumed.length if resumed else 0) == max(0, end - 3)
        assert_same(converter.convert(body, PROFILES[profile]), _fresh(body, PROFILES[profile]))
        again = converter.walks.resume(converter.messages(body), MODEL, PROFILES[profile])
        assert again is not None and again.length == end  # a retry resumes after its last message
    # Each turn's line replaced the one it resumed from; the first turn's line was not resumed
    # (its only message came back unmarked) and waits for its turn to leave.
    assert len(converter.walks) == 2


@pytest.mark.parametrize("fixture", ["cc_parallel_results.json", "cc_tool_search.json", "interrupted_turn.json",
                                     "images.json", "documents.json", "mcp_long_name.json", "orphan_tool_result.json",
                                     "cc_merged_turns_is_error.json", "cc_provider_turn.json"])
@pytest.mark.parametrize("profile", ["openrouter", "mistral", "deepseek", "gemini", "openai"])
def test_every_start_of_a_recorded_conversation_resumes_to_the_same_request(fixture: str, profile: str) -> None:
    body = anthropic_body(fixture)
    body.setdefault("max_tokens", 1024)
    messages = body["messages"]
    converter = Converter()
    for end in range(1, len(messages) + 1):
        turn = {**body, "messages": messages[:end]}
        assert_same(converter.convert(turn, PROFILES[profile]), _fresh(turn, PROFILES[profile]))
    again = converter.convert(body, PROFILES[profile])  # a retry resumes after its last message
    assert_same(again, _fresh(body, PROFILES[profile]))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(earlier=MESSAGES, later=MESSAGES, fork=st.integers(0, 8), profile=st.sampled_from(sorted(PROFILES)),
       tools=st.sampled_from([[], [{"name": "Bash", "input_schema": {"type": "object", "properties": {"a": {}}}},
                                   {"name": "Read", "input_schema": {"type": "object", "properties": {"a": {}}},
                                    "defer_loading": True}]]))
def test_property_a_resumed_walk_is_a_fresh_walk(
    earlier: list[Any], later: list[Any], fork: int, profile: str, tools: list[Any]
) -> None:
    """Whatever conversations came before (a shorter one, a fork of it), a request converts exactly as
    it does with nothing remembered."""
    assume(unique_tool_use_ids(earlier + later))
    converter = Converter()
    chosen = PROFILES[profile]
    for messages in (earlier, earlier + later, earlier[:fork] + later, earlier + later):
        body = _request(messages, tools=tools)
        assert_same(converter.convert(body, chosen), _fresh(body, chosen))


def test_a_system_message_that_folds_into_the_last_user_message_resumes_correctly() -> None:
    """A mid-conversation system text replaces the walk's last message (folded into it): the
    remembered state keeps the message as it was, and the weight is counted again."""
    profile = PROFILES["generic"]  # folds system text into the user message
    assert profile.mid_system != "inline"
    converter = Converter()
    first = [{"role": "user", "content": "hello"}]
    second = [*first, {"role": "system", "content": "be brief"}]
    assert_same(converter.convert(_request(first), profile), _fresh(_request(first), profile))
    assert_same(converter.convert(_request(second), profile), _fresh(_request(second), profile))
    assert_same(converter.convert(_request(first), profile), _fresh(_request(first), profile))


def test_another_profile_or_model_does_not_resume() -> None:
    converter = Converter()
    body = _request(_turns(2))
    converter.convert(body, PROFILES["openrouter"])
    messages = converter.messages(body)
    assert converter.walks.resume(messages, MODEL, PROFILES["openrouter"]) is not None
    assert converter.walks.resume(messages, MODEL, PROFILES["mistral"]) is None
    assert converter.walks.resume(messages, "other/model", PROFILES["openrouter"]) is None


def test_only_the_last_lookback_positions_are_tried() -> None:
    converter = Converter()
    profile = PROFILES["openrouter"]
    conversation = _turns(LOOKBACK)
    converter.convert(_request(conversation[:1]), profile)
    converter.convert(_request(conversation[:LOOKBACK]), profile)  # resumes: LOOKBACK - 1 new messages
    converter.convert(_request(conversation[:1]), profile)
    longer = converter.messages(_request(conversation[: 2 + LOOKBACK]))
    resumed = converter.walks.resume(longer, MODEL, profile)
    assert resumed is not None and resumed.length == LOOKBACK  # not the first message's state
    longest = converter.messages(_request(conversation[: 1 + LOOKBACK + LOOKBACK]))
    assert converter.walks.resume(longest, MODEL, profile) is None


def _state(text: str) -> WalkState:
    return WalkState((ChatMessage("user", text),), (), (), (), (), frozenset())


def _messages(count: int) -> list[Message]:
    return [Message("user", f"message {index}") for index in range(count)]


def test_a_state_whose_messages_are_gone_is_not_resumed_and_is_forgotten() -> None:
    walks = WalkMemo()
    profile = PROFILES["openrouter"]
    messages = _messages(3)
    walks.remember(messages, {3: _state("x")}, None, MODEL, profile)
    del messages[0]  # gone: its id may be reused by any new object
    gc.collect()
    resumed = walks.resume([Message("user", "other"), *messages], MODEL, profile)  # same length, same last
    assert resumed is None
    assert len(walks) == 0


def test_the_memo_is_bounded_by_weight_and_count() -> None:
    profile = PROFILES["openrouter"]
    walks = WalkMemo(max_weight=1_000, max_lines=3)
    kept = [_messages(1) for _ in range(4)]
    for messages in kept:
        walks.remember(messages, {1: _state("y" * 100)}, None, MODEL, profile)
    assert len(walks) == 3  # the oldest went first
    assert walks.resume(kept[0], MODEL, profile) is None
    assert walks.resume(kept[3], MODEL, profile) is not None
    heavy = _messages(1)
    walks.remember(heavy, {1: _state("z" * 2_000)}, None, MODEL, profile)  # heavier than the bound
    assert walks.resume(heavy, MODEL, profile) is None
    assert len(walks) == 3
    walks.remember(heavy, {1: _state("z" * 400)}, None, MODEL, profile)  # fits, once the others left
    assert walks.resume(heavy, MODEL, profile) is not None
    assert len(walks) == 1


def test_the_weight_counts_texts_images_files_calls_and_reasoning() -> None:
    profile = PROFILES["openrouter"]
    image = ChatMessage("user", [TextPart("t" * 10), ImagePart({"url": "data:image/png;base64," + "A" * 5_000})])
    walks = WalkMemo(max_weight=10_000)
    messages = _messages(1)
    walks.remember(messages, {1: WalkState((image,), (), (), (), (), frozenset())}, None, MODEL, profile)
    assert walks.resume(messages, MODEL, profile) is None  # the image alone is over 10,000 (as text and JSON)
    reasoning = ChatMessage("assistant", "a", reasoning="r" * 5_000)
    walks.remember(messages, {1: WalkState((reasoning,), (), (), (), (), frozenset())}, None, MODEL, profile)
    assert walks.resume(messages, MODEL, profile) is None


def test_the_weight_of_a_resumed_walk_is_that_of_everything_it_emitted() -> None:
    """Counted incrementally (the resumed state's weight plus what came after), also when the walk
    replaced the last message it resumed with: the same as counting it all, for every state kept."""
    profile = PROFILES["generic"]
    converter = Converter()
    conversation = [{"role": "user", "content": "x" * 3_000}, {"role": "system", "content": "y" * 3_000},
                    *_turns(3)[1:]]
    for end in range(1, len(conversation) + 1):  # the second folds into the first message
        converter.convert(_request(conversation[:end]), profile)
        (line,) = converter.walks._lines
        for state, weight in line.states.values():
            assert weight == sum(map(_message_weight, state.out))
        assert line.weight == max(weight for _, weight in line.states.values())
        assert line.weight > (12_000 if end > 1 else 6_000)  # each text twice


def test_a_remembered_message_is_encoded_once_and_spliced_into_each_later_body() -> None:
    converter = Converter()
    profile = PROFILES["openrouter"]
    conversation = _turns(3)
    first = wire_payload(converter.convert(_request(conversation[:5]), profile).request)
    second = wire_payload(converter.convert(_request(conversation), profile).request)
    assert all(isinstance(message, jsonio.Encoded) for message in first["messages"] + second["messages"])
    assert all(again is before for again, before in zip(second["messages"][:5], first["messages"][:5], strict=True))
    body = jsonio.dumps(second)  # the same bytes as the plain data encoded in one pass
    assert body == json.dumps(to_dict(converter.convert(_request(conversation), profile).request),
                              ensure_ascii=False, separators=(",", ":")).encode()


def test_a_line_keeps_the_states_after_its_last_messages() -> None:
    converter = Converter()
    profile = PROFILES["openrouter"]
    conversation = _turns(4)
    for end in (3, 5, 9, 9):  # the last one a retry, which walks nothing and keeps what it resumed
        converter.convert(_request(_as_sent(conversation[:end])), profile)
        (line,) = converter.walks._lines
        assert sorted(line.states) == list(range(max(1, end - KEEP + 1), end + 1))

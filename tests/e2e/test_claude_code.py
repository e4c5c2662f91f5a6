"""The real Claude Code CLI through ccproxy against a scripted OpenAI-compatible upstream.

The CLI is a blocking subprocess: it runs in a thread (C{deferToThread}) while the
reactor serves the proxy and the fake upstream in this process.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from tests.claude_cli import find_claude, run_claude
from tests.fake_upstream import Reply, chunk, text_reply, tool_call_reply, usage_chunk

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(find_claude() is None, reason="Claude Code CLI not installed (make test installs it)"),
]


def tool_messages(body: Any) -> list[dict[str, Any]]:
    return [m for m in body.get("messages", []) if m.get("role") == "tool"]


@pytest_twisted.ensureDeferred
async def test_claude_code_runs_a_bash_tool_loop(harness: Any, tmp_path: Path) -> None:
    """Claude asks for Bash, Claude Code runs it, the result goes back, Claude answers."""
    marker = "ccproxy-" + secrets.token_hex(6)
    final = f"The command printed {marker}."

    def script(body: Any) -> Reply:
        results = tool_messages(body)
        if not results:
            return tool_call_reply("Bash", json.dumps({"command": f"echo {marker}", "description": "Print the marker"}), "call_e2e_1", fragments=5)
        return text_reply(final)

    url = harness.start(script)
    run = await deferToThread(run_claude, url, "Run echo with the marker and tell me what it printed.", str(tmp_path), timeout=120)
    assert run.returncode == 0, (run.stdout, run.stderr)
    assert run.result is not None and run.result["is_error"] is False, run.stdout
    assert run.result["result"] == final
    bodies = [r.body for r in harness.upstream.received]
    last = bodies[-1]
    results = tool_messages(last)
    assert results and results[0]["tool_call_id"] == "call_e2e_1"
    assert marker in results[0]["content"]
    calls = [m for m in last["messages"] if m.get("role") == "assistant" and m.get("tool_calls")]
    assert calls[-1]["tool_calls"][0]["id"] == "call_e2e_1"
    assert calls[-1]["tool_calls"][0]["function"]["name"] == "Bash"
    # Claude Code's opus/sonnet ids were routed to the configured model.
    assert {b["model"] for b in bodies} <= {"gpt-5", "gpt-5-mini"}


@pytest_twisted.ensureDeferred
async def test_claude_code_runs_two_parallel_bash_calls(harness: Any, tmp_path: Path) -> None:
    """Two Bash calls in one turn: both run, both results come back in call order."""
    first, second = ("one-" + secrets.token_hex(4), "two-" + secrets.token_hex(4))

    def script(body: Any) -> Reply:
        if tool_messages(body):
            return text_reply("Both commands ran.")
        return Reply(
            chunks=[
                chunk({"role": "assistant", "content": "Running both."}),
                chunk({"tool_calls": [{"index": 0, "id": "call_p1", "type": "function", "function": {"name": "Bash", "arguments": ""}}]}),
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": json.dumps({"command": f"echo {first}"})}}]}),
                chunk({"tool_calls": [{"index": 1, "id": "call_p2", "type": "function", "function": {"name": "Bash", "arguments": json.dumps({"command": f"echo {second}"})}}]}),
                chunk({}, "tool_calls"),
                usage_chunk(),
            ]
        )

    url = harness.start(script)
    run = await deferToThread(run_claude, url, "Run the two echo commands.", str(tmp_path), timeout=120)
    assert run.result is not None and run.result["is_error"] is False, (run.stdout, run.stderr)
    assert run.result["result"] == "Both commands ran."
    results = tool_messages(harness.upstream.received[-1].body)
    assert [r["tool_call_id"] for r in results] == ["call_p1", "call_p2"]
    assert first in results[0]["content"] and second in results[1]["content"]


@pytest_twisted.ensureDeferred
async def test_claude_code_accepts_reasoning_as_thinking(harness: Any, tmp_path: Path) -> None:
    """A reasoning stream becomes a thinking block Claude Code accepts and replays."""

    def script(body: Any) -> Reply:
        if tool_messages(body):
            return Reply(
                chunks=[
                    chunk({"role": "assistant", "reasoning_content": "The tool printed the date; "}),
                    chunk({"reasoning_content": "I can answer now."}),
                    chunk({"content": "Done thinking."}),
                    chunk({}, "stop"),
                    usage_chunk(),
                ]
            )
        return Reply(
            chunks=[
                chunk({"role": "assistant", "reasoning_content": "I should check the date first."}),
                chunk({"tool_calls": [{"index": 0, "id": "call_r1", "type": "function", "function": {"name": "Bash", "arguments": '{"command":"date"}'}}]}),
                chunk({}, "tool_calls"),
                usage_chunk(),
            ]
        )

    url = harness.start(script, provider="deepseek")
    run = await deferToThread(run_claude, url, "What is the date?", str(tmp_path), timeout=120)
    assert run.result is not None and run.result["is_error"] is False, (run.stdout, run.stderr)
    assert run.result["result"] == "Done thinking."
    # Claude Code sent the thinking block back with our carrier signature, and the
    # DeepSeek profile replayed its text as reasoning_content on the tool-call turn.
    second = harness.upstream.received[-1].body
    assistant = [m for m in second["messages"] if m.get("role") == "assistant"]
    assert assistant[-1]["tool_calls"][0]["id"] == "call_r1"
    assert assistant[-1]["reasoning_content"] == "I should check the date first."


@pytest_twisted.ensureDeferred
async def test_claude_code_replays_gemini_thought_signatures(harness: Any, tmp_path: Path) -> None:
    """A Gemini call's thought signature rides in an empty thinking block; Claude Code replays it and the
    gemini profile puts it back on the call, as Gemini 3 requires (else its real 400)."""
    signature = "CiwBVKhc7pT0m3b5rG9Z2xQ8yN1vL4kD7wE0sA6fJ3hU9iO2pC5nM8qR1tW4zY"

    def script(body: Any) -> Reply:
        calls = [m for m in body["messages"] if m.get("role") == "assistant" and m.get("tool_calls")]
        if calls:
            extra = calls[-1]["tool_calls"][0].get("extra_content") or {}
            if extra.get("google", {}).get("thought_signature") != signature:
                return Reply(status=400, body=[{"error": {"code": 400, "status": "INVALID_ARGUMENT", "message":
                    "Function call is missing a thought_signature in functionCall parts."}}])
            return text_reply("The date was printed.")
        call = {"extra_content": {"google": {"thought_signature": signature}}, "id": "function-call-1",
                "type": "function", "function": {"name": "Bash", "arguments": '{"command":"date"}'}}
        return Reply(chunks=[chunk({"role": "assistant", "tool_calls": [call]}, "stop"), usage_chunk()])

    url = harness.start(script, provider="gemini", opus_model="gemini-3-pro-preview",
                        sonnet_model="gemini-3-pro-preview", haiku_model="gemini-3-flash-preview")
    run = await deferToThread(run_claude, url, "Print the date.", str(tmp_path), timeout=120)
    assert run.result is not None and run.result["is_error"] is False, (run.stdout, run.stderr)
    assert run.result["result"] == "The date was printed."
    last = harness.upstream.received[-1].body
    assert tool_messages(last) and tool_messages(last)[0]["tool_call_id"] == "function-call-1"


def openai_reasoning_rules(body: Any) -> Reply | None:
    """OpenAI's real 400s for what reasoning models reject; None when the body is fine."""
    if "max_tokens" in body:
        return Reply(status=400, body={"error": {
            "message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
            "type": "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}})
    if "temperature" in body and body["temperature"] != 1:
        return Reply(status=400, body={"error": {
            "message": f"Unsupported value: 'temperature' does not support {body['temperature']} with this model. Only the default (1) value is supported.",
            "type": "invalid_request_error", "param": "temperature", "code": "unsupported_value"}})
    if body.get("max_completion_tokens", 0) > 100000:
        return Reply(status=400, body={"error": {
            "message": f"max_tokens is too large: {body['max_completion_tokens']}. This model supports at most 100000 completion tokens, whereas you provided {body['max_completion_tokens']}.",
            "type": "invalid_request_error", "param": "max_tokens", "code": "invalid_value"}})
    return None


@pytest_twisted.ensureDeferred
async def test_claude_code_through_an_upstream_with_openai_reasoning_rules(harness: Any, tmp_path: Path) -> None:
    """A generic upstream that enforces o-series rules: ccproxy learns the fixes from the
    400s (rename max_tokens, cap the output) and the tool loop completes."""
    marker = "strict-" + secrets.token_hex(4)

    def script(body: Any) -> Reply:
        rejected = openai_reasoning_rules(body)
        if rejected is not None:
            return rejected
        if tool_messages(body):
            return text_reply(f"Saw {marker}.")
        return tool_call_reply("Bash", json.dumps({"command": f"echo {marker}"}), "call_strict")

    url = harness.start(script, opus_model="o3", sonnet_model="o3", haiku_model="o3")
    run = await deferToThread(run_claude, url, "Echo the marker.", str(tmp_path), timeout=120)
    assert run.result is not None and run.result["is_error"] is False, (run.stdout, run.stderr)
    assert run.result["result"] == f"Saw {marker}."
    accepted = [r.body for r in harness.upstream.received if openai_reasoning_rules(r.body) is None]
    assert len(accepted) >= 2
    assert all(b["max_completion_tokens"] <= 100000 and "max_tokens" not in b for b in accepted)
    # Learned once: the rejected attempts all come before the first accepted one.
    bodies = [r.body for r in harness.upstream.received]
    first_ok = bodies.index(accepted[0])
    assert all(openai_reasoning_rules(b) is None for b in bodies[first_ok:])


@pytest_twisted.ensureDeferred
async def test_claude_code_turns_resume_where_the_previous_turn_stopped(
    harness: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each turn of a tool loop decodes, counts and converts only its new messages: its body resends
    the previous body's bytes (ccproxy.layouts), and the token count and the walk resume where the
    previous turn's stopped (ccproxy.prefixes), whatever Claude Code changes in what it resends
    (such as the prompt cache mark it moves to the new last message)."""
    from ccproxy.convert.walks import WalkMemo
    from ccproxy.layouts import Layouts
    from ccproxy.prefixes import PrefixMemo

    resumed: list[tuple[int, int]] = []  # (messages in the request, messages resumed over)
    tallied: list[tuple[int, int]] = []  # the same, for the token count
    matched: list[int | None] = []  # messages of the resent body it shares, None if it is decoded whole
    resume, match = PrefixMemo.resume, Layouts.match

    def spy_resume(self: PrefixMemo[Any], items: Any, tag: Any = None, owner: Any = None) -> Any:
        found = resume(self, items, tag, owner)
        (resumed if isinstance(self, WalkMemo) else tallied).append((len(items), found.length if found else 0))
        return found

    def spy_match(self: Any, raw: bytes) -> Any:
        found = match(self, raw)
        matched.append(found.known if found is not None else None)
        return found

    monkeypatch.setattr(PrefixMemo, "resume", spy_resume)
    monkeypatch.setattr(Layouts, "match", spy_match)

    def script(body: Any) -> Reply:
        done = len(tool_messages(body))
        if done < 3:
            command = json.dumps({"command": f"echo step{done}", "description": f"Step {done}"})
            return tool_call_reply("Bash", command, f"call_step_{done}")
        return text_reply("All three steps ran.")

    url = harness.start(script)
    run = await deferToThread(run_claude, url, "Run the three steps one by one.", str(tmp_path), timeout=120)
    assert run.result is not None and run.result["is_error"] is False, (run.stdout, run.stderr)
    assert run.result["result"] == "All three steps ran."
    for found in (resumed, tallied):
        loop = [entry for entry in found if entry[0] >= 3]  # the tool loop's turns (side requests are shorter)
        assert len(loop) >= 3, found
        assert all(after >= count - 3 for count, after in loop), found
    # Claude Code writes its bodies as orjson does, so every turn after the first is split by its bytes.
    assert matched[0] is None and all(known is not None for known in matched[-3:]), matched


@pytest_twisted.ensureDeferred
async def test_claude_code_runs_a_subagent_and_hears_its_report(harness: Any, tmp_path: Path) -> None:
    """The Agent tool starts a subagent in the background: its own conversation (its prompt as
    the user's message) goes through ccproxy too, and its report reaches the main conversation
    as a notification the main model answers."""
    marker = "agent-" + secrets.token_hex(4)
    prompt = "Find the marker and report it."
    final = f"The agent found {marker}."

    def script(body: Any) -> Reply:
        messages = body["messages"]
        last = str(messages[-1].get("content"))
        if prompt in last and len(messages) == 2:  # the subagent's own first turn
            return text_reply(marker)
        if marker in last:  # the main conversation, told of the report
            return text_reply(final)
        if tool_messages(body):  # the main conversation, after the launch
            return text_reply("Waiting for the agent.")
        arguments = {"description": "Find the marker", "prompt": prompt, "subagent_type": "claude"}
        return tool_call_reply("Agent", json.dumps(arguments), "call_agent_1")

    url = harness.start(script)
    run = await deferToThread(
        run_claude, url, "Have an agent find the marker.", str(tmp_path), timeout=120, allowed_tools="Agent"
    )
    assert run.ok, (run.stdout, run.stderr)
    assert run.text == final
    bodies = [r.body for r in harness.upstream.received]
    subagent = [b for b in bodies if len(b["messages"]) == 2 and prompt in str(b["messages"][-1]["content"])]
    assert len(subagent) == 1
    assert subagent[0]["messages"][0]["content"] != bodies[0]["messages"][0]["content"]  # its own system prompt

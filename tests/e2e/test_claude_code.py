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

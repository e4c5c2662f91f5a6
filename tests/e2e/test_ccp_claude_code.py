"""`ccp` end to end: it starts the daemon, then the real Claude Code runs a tool loop
through it against the scripted upstream served by this test's reactor."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from tests.claude_cli import claude_env, find_claude
from tests.e2e.test_claude_code import tool_messages
from tests.fake_upstream import Reply, start_fake_upstream, text_reply, tool_call_reply
from tests.service.support import BIN, CCP, REPO, ccproxy_command, free_port

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(find_claude() is None, reason="Claude Code CLI not installed (make test installs it)"),
]


@pytest_twisted.ensureDeferred
async def test_ccp_runs_claude_code_through_a_started_proxy(tmp_path: Path) -> None:
    """ccp finds no proxy, starts one (daemonized), and Claude Code completes a Bash loop,
    although the environment names an HTTP proxy."""
    marker = "ccp-" + secrets.token_hex(5)

    def script(body: Any) -> Reply:
        if tool_messages(body):
            return text_reply(f"ccp saw {marker}")
        return tool_call_reply("Bash", json.dumps({"command": f"echo {marker}"}), "call_ccp")

    upstream, upstream_port = start_fake_upstream(script)
    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    port = free_port()
    claude_dir = str(Path(find_claude() or "").parent)
    env = claude_env("http://unused", str(home))
    del env["ANTHROPIC_BASE_URL"], env["ANTHROPIC_AUTH_TOKEN"]  # ccp sets both
    env.update(
        PATH=os.pathsep.join([str(BIN), claude_dir, env["PATH"]]),
        PORT=str(port),
        OPENAI_BASE_URL=f"http://127.0.0.1:{upstream_port.getHost().port}/v1",
        OPENAI_API_KEY="sk-upstream-e2e",
        # An HTTP proxy in the environment that refuses every connection: Claude Code
        # honours it, so it reaches the proxy on loopback only because ccp adds NO_PROXY.
        HTTP_PROXY=f"http://127.0.0.1:{free_port()}",
        HTTPS_PROXY=f"http://127.0.0.1:{free_port()}",
    )
    command = [str(CCP), "-p", "Echo the marker.", "--output-format", "json", "--allowedTools", "Bash"]
    try:
        result = await deferToThread(
            subprocess.run, command, env=env, cwd=work, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
        )
        assert result.returncode == 0, (result.stdout, result.stderr)
        answer = json.loads(result.stdout)
        assert answer["is_error"] is False and answer["result"] == f"ccp saw {marker}"
        results = tool_messages(upstream.received[-1].body)
        assert results[0]["tool_call_id"] == "call_ccp" and marker in results[0]["content"]
        assert upstream.received[-1].headers["authorization"] == "Bearer sk-upstream-e2e"
    finally:
        stop_env = {"HOME": str(home), "PATH": env["PATH"]}
        await deferToThread(
            subprocess.run, [*ccproxy_command(), "stop"], env=stop_env, cwd=REPO, capture_output=True, timeout=30
        )
        await upstream_port.stopListening()

"""`ccp` end to end: it starts the daemon, then the real Claude Code runs a tool loop
through it against the scripted upstream served by this test's reactor; also in a network
whose only way out is an HTTP proxy."""

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
from tests.connect_proxy import ConnectProxy, start_connect_proxy
from tests.e2e.test_claude_code import tool_messages
from tests.fake_upstream import Reply, start_fake_upstream, text_reply, tool_call_reply
from tests.service.support import BIN, CCP, REPO, ccproxy_command, free_port
from tests.tls import Authority, make_authority

UPSTREAM_NAME = "api.upstream.test"  # resolves nowhere: only the test's CONNECT proxy reaches it

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(find_claude() is None, reason="Claude Code CLI not installed (make test installs it)"),
]


@pytest_twisted.ensureDeferred
async def test_ccp_runs_claude_code_through_a_started_proxy(tmp_path: Path) -> None:
    """ccp finds no proxy, starts one (daemonized), and Claude Code completes a Bash loop,
    although the environment names an HTTP proxy."""
    await run_bash_loop(
        tmp_path,
        tls=None,
        # An HTTP proxy in the environment that refuses every connection: Claude Code
        # honours it, so it reaches the proxy on loopback only because ccp adds NO_PROXY.
        proxy_env={"HTTP_PROXY": f"http://127.0.0.1:{free_port()}", "HTTPS_PROXY": f"http://127.0.0.1:{free_port()}"},
    )


@pytest_twisted.ensureDeferred
async def test_ccp_in_a_network_whose_only_way_out_is_an_http_proxy(tmp_path: Path) -> None:
    """The corporate set-up: HTTPS_PROXY names the one way out, and the https upstream has
    a name only that proxy reaches. Claude Code talks to ccproxy on loopback directly; the
    daemon ccp starts reads the same HTTPS_PROXY and tunnels to the upstream through it."""
    authority = make_authority(tmp_path, names=(UPSTREAM_NAME,))
    script = ConnectProxy(("127.0.0.1", 0))
    proxy_port = start_connect_proxy(script)
    try:
        await run_bash_loop(
            tmp_path,
            tls=authority,
            proxy_env={"HTTPS_PROXY": f"http://team:pw@127.0.0.1:{proxy_port.getHost().port}",
                       "SSL_CERT_FILE": str(authority.ca_file)},
            connect_proxy=script,
        )
    finally:
        await proxy_port.stopListening()
    assert {request.split("\r\n")[0] for request in script.requests} == {f"CONNECT {UPSTREAM_NAME}:443 HTTP/1.1"}


async def run_bash_loop(
    tmp_path: Path, tls: Authority | None, proxy_env: dict[str, str], connect_proxy: ConnectProxy | None = None
) -> None:
    """ccp (starting the daemon) runs Claude Code through a Bash loop against the scripted
    upstream: over http on 127.0.0.1, or with C{tls} at C{UPSTREAM_NAME}, which only
    C{connect_proxy} reaches."""
    marker = "ccp-" + secrets.token_hex(5)

    def script(body: Any) -> Reply:
        if tool_messages(body):
            return text_reply(f"ccp saw {marker}")
        return tool_call_reply("Bash", json.dumps({"command": f"echo {marker}"}), "call_ccp")

    upstream, upstream_port = start_fake_upstream(script, tls)
    if connect_proxy is not None:
        connect_proxy.target = ("127.0.0.1", upstream_port.getHost().port)
        upstream_url = f"https://{UPSTREAM_NAME}/v1"
    else:
        upstream_url = f"http://127.0.0.1:{upstream_port.getHost().port}/v1"
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
        OPENAI_BASE_URL=upstream_url,
        OPENAI_API_KEY="sk-upstream-e2e",
        **proxy_env,
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

"""ccp: start the proxy when it is down, reuse it when up, then exec claude with its settings."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.service.conftest import Service
from tests.service.support import BIN, CCP, free_port, health, http, path_without, run
from tests.service.support import ccproxy as run_ccproxy

# Arguments that a naive "$*" or unquoted expansion would mangle.
ARGS = ["-p", "two  words", "", "it's \"quoted\"", "*", "--model", "$HOME"]

FAKE_CLAUDE = f"""#!{sys.executable}
import json, os, sys
json.dump({{"args": sys.argv[1:], "env": dict(os.environ)}}, sys.stdout)
"""


@pytest.fixture
def fake_claude(service: Service, tmp_path: Path) -> Path:
    """A `claude` first on PATH that prints its arguments and environment as JSON."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    claude = bin_dir / "claude"
    claude.write_text(FAKE_CLAUDE)
    claude.chmod(0o755)
    service.env["PATH"] = os.pathsep.join([str(bin_dir), service.env["PATH"]])
    return bin_dir


def ccp(service: Service, *args: str, env: dict[str, str] | None = None) -> tuple[Any, str]:
    """Run ccp; what the fake claude saw, and ccp's stderr."""
    result = run([str(CCP), *args], env or service.env, service.cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stderr


def test_starts_the_proxy_when_down(service: Service, fake_claude: Path) -> None:
    """Settings from ~/.claude/proxy.env; the key becomes the token; model names stay out."""
    port = free_port()
    (service.home / ".claude").mkdir()
    (service.home / ".claude" / "proxy.env").write_text(
        f"# ccproxy\nPORT=\"{port}\"  # the port\nexport ANTHROPIC_API_KEY='local secret'\n"
    )
    env = {**service.env, "ANTHROPIC_DEFAULT_SONNET_MODEL": "my-sonnet"}

    seen, stderr = ccp(service, *ARGS, env=env)

    assert "ccproxy started" in stderr
    assert seen["args"] == ARGS
    claude_env = seen["env"]
    assert claude_env["ANTHROPIC_BASE_URL"] == f"http://127.0.0.1:{port}"
    assert claude_env["ANTHROPIC_AUTH_TOKEN"] == "local secret"
    assert "ANTHROPIC_API_KEY" not in claude_env
    assert not [name for name in claude_env if name.startswith("ANTHROPIC_DEFAULT_")]
    # The proxy itself got the model setting and the key.
    info = health(port)
    assert info is not None and info["routing"]["sonnet"] == "my-sonnet"
    count = f"http://127.0.0.1:{port}/v1/messages/count_tokens"
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}
    assert http(count, body)[0] == 401
    bearer = {"authorization": f"Bearer {claude_env['ANTHROPIC_AUTH_TOKEN']}"}
    assert http(count, body, bearer)[0] == 200


def test_reuses_the_running_proxy(service: Service, fake_claude: Path) -> None:
    """PORT from ./.env (before ~/.claude/proxy.env); a proxy already up is not restarted."""
    port = free_port()
    (service.cwd / ".env").write_text(f"PORT={port}\n")
    (service.home / ".claude").mkdir()
    (service.home / ".claude" / "proxy.env").write_text("PORT=1\n")
    assert run_ccproxy("start", env=service.env, cwd=service.cwd).returncode == 0
    pid = service.pidfile.read_text()

    seen, stderr = ccp(service, "hello world")

    assert stderr == ""  # ccproxy start was not needed
    assert service.pidfile.read_text() == pid
    assert seen["args"] == ["hello world"]
    assert seen["env"]["ANTHROPIC_BASE_URL"] == f"http://127.0.0.1:{port}"
    assert seen["env"]["ANTHROPIC_AUTH_TOKEN"] == "ccproxy"


def test_claude_reaches_the_proxy_around_an_http_proxy(service: Service, fake_claude: Path) -> None:
    """With HTTP(S)_PROXY set (Claude Code honours them), loopback joins NO_PROXY and
    no_proxy, after what they listed; a list that names it already is left alone."""
    port = free_port()
    env = {
        **service.env,
        "PORT": str(port),
        "HTTPS_PROXY": "http://proxy.invalid:3128",
        "HTTP_PROXY": "http://proxy.invalid:3128",
        "NO_PROXY": "example.com,localhost",
    }
    env.pop("no_proxy", None)
    seen, _ = ccp(service, env=env)
    assert seen["env"]["NO_PROXY"] == "example.com,localhost,127.0.0.1"
    assert seen["env"]["no_proxy"] == "127.0.0.1,localhost"
    assert seen["env"]["HTTPS_PROXY"] == "http://proxy.invalid:3128"  # other hosts still use it
    seen, _ = ccp(service, env={**env, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "*"})
    assert (seen["env"]["NO_PROXY"], seen["env"]["no_proxy"]) == ("127.0.0.1,localhost", "*,127.0.0.1,localhost")


def test_probes_with_python_when_curl_is_missing(
    service: Service, fake_claude: Path, tmp_path: Path
) -> None:
    """Without curl, python3 checks /health: a running proxy is found and reused."""
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("grep", "tail", "tr", "sed", "env", "dirname"):
        found = shutil.which(tool)
        assert found is not None
        (tools / tool).symlink_to(found)
    (tools / "python3").symlink_to(sys.executable)
    (tools / "ccproxy").symlink_to(BIN / "ccproxy")
    env = {**service.env, "PATH": os.pathsep.join([str(fake_claude), str(tools)]), "PORT": str(free_port())}
    assert shutil.which("curl", path=env["PATH"]) is None

    result = run_ccproxy("start", env=env, cwd=service.cwd)
    assert result.returncode == 0, result.stderr
    seen, stderr = ccp(service, "x", env=env)
    assert stderr == ""
    assert seen["env"]["ANTHROPIC_BASE_URL"] == f"http://127.0.0.1:{env['PORT']}"


def test_claude_missing(service: Service) -> None:
    """No claude on PATH: exit 127 with a message, and no proxy is started."""
    result = run([str(CCP)], {**service.env, "PORT": str(free_port())}, service.cwd)
    assert result.returncode == 127
    assert "claude" in result.stderr and "not on PATH" in result.stderr
    assert not service.pidfile.exists()


def test_ccproxy_missing(service: Service, fake_claude: Path) -> None:
    """The proxy is down and ccproxy is not on PATH: exit 127 with a message."""
    path = os.pathsep.join([str(fake_claude), *path_without("claude", "ccproxy")])
    env = {**service.env, "PATH": path, "PORT": str(free_port())}
    result = run([str(CCP)], env, service.cwd)
    assert result.returncode == 127
    assert "ccproxy is not on PATH" in result.stderr
    assert result.stdout == ""


def test_bad_port(service: Service, fake_claude: Path) -> None:
    """A PORT that is not a number stops ccp before anything starts."""
    result = run([str(CCP)], {**service.env, "PORT": "80a"}, service.cwd)
    assert result.returncode == 2
    assert "PORT" in result.stderr
    assert result.stdout == ""
    assert not service.pidfile.exists()


def test_start_failure_is_reported(service: Service, fake_claude: Path) -> None:
    """When ccproxy cannot start, ccp says so and does not run claude."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        env = {**service.env, "PORT": str(holder.getsockname()[1])}
        result = run([str(CCP)], env, service.cwd)
    assert result.returncode == 1
    assert "already in use" in result.stderr
    assert "not running claude" in result.stderr
    assert result.stdout == ""

"""The ccproxy command: start, status, stop, stale pidfiles, failures, usage errors."""

from __future__ import annotations

import socket
import subprocess

import pytest

import ccproxy
from ccproxy.cli import main
from tests.service.conftest import Processes, Service
from tests.service.support import (
    WAIT,
    ccproxy_command,
    free_port,
    health,
    http,
    is_alive,
    wait_for,
)
from tests.service.support import ccproxy as run_ccproxy


def start(service: Service, port: int) -> int:
    """C{ccproxy start --port PORT}, which must succeed; the daemon's pid."""
    result = run_ccproxy("start", "--port", str(port), env=service.env, cwd=service.cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"on http://127.0.0.1:{port}" in result.stdout
    return int(service.pidfile.read_text())


def test_start_status_stop(service: Service) -> None:
    """start answers /health before it returns; status, a second start, requests, stop."""
    port = free_port()
    pid = start(service, port)
    assert is_alive(pid)
    assert health(port) is not None

    status = run_ccproxy("status", env=service.env, cwd=service.cwd)
    assert status.returncode == 0, status.stderr
    assert f"ccproxy is running (pid {pid}) on http://127.0.0.1:{port}" in status.stdout
    assert "127.0.0.1:9" in status.stdout  # the upstream
    assert "opus -> gpt-5" in status.stdout
    assert ccproxy.__version__ in status.stdout
    assert "uptime:" in status.stdout
    assert "requests: 0 (0 errors, 0 cancelled, 0 running)" in status.stdout

    again = run_ccproxy("start", "--port", str(port), env=service.env, cwd=service.cwd)
    assert again.returncode == 0
    assert f"ccproxy is already running (pid {pid}) on http://127.0.0.1:{port}" in again.stdout
    assert int(service.pidfile.read_text()) == pid

    info = health(port)
    assert info is not None and info["name"] == "ccproxy" and info["upstream"] == "127.0.0.1:9"
    code, counted = http(
        f"http://127.0.0.1:{port}/v1/messages/count_tokens",
        {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hello"}]},
    )
    assert code == 200 and counted["input_tokens"] > 0

    stopped = run_ccproxy("stop", env=service.env, cwd=service.cwd)
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped (pid {pid})" in stopped.stdout
    assert not is_alive(pid)
    assert not service.pidfile.exists()
    assert health(port) is None

    after = run_ccproxy("status", env=service.env, cwd=service.cwd)
    assert after.returncode == 3
    assert "not running" in after.stdout

    again_stopped = run_ccproxy("stop", env=service.env, cwd=service.cwd)
    assert again_stopped.returncode == 0
    assert "ccproxy is not running" in again_stopped.stdout


def test_settings_come_from_proxy_env(service: Service) -> None:
    """Without --port, start listens where ~/.claude/proxy.env says, as the daemon would."""
    port = free_port()
    (service.home / ".claude").mkdir()
    (service.home / ".claude" / "proxy.env").write_text(f'PORT="{port}"\n')
    result = run_ccproxy("start", env=service.env, cwd=service.cwd)
    assert result.returncode == 0, result.stderr
    assert health(port) is not None
    status = run_ccproxy("status", env=service.env, cwd=service.cwd)
    assert f"http://127.0.0.1:{port}" in status.stdout


def test_stale_pidfile_of_a_dead_process(service: Service) -> None:
    """A pidfile naming a process that is gone: not running; start replaces it."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert not is_alive(dead.pid)
    (service.home / ".claude").mkdir()
    service.pidfile.write_text(f"{dead.pid}\n")

    status = run_ccproxy("status", env=service.env, cwd=service.cwd)
    assert status.returncode == 3

    port = free_port()
    pid = start(service, port)
    assert pid != dead.pid
    assert is_alive(pid)


def test_stale_pidfile_naming_an_unrelated_process(service: Service, processes: Processes) -> None:
    """A pid reused by another program is never signalled; start and stop ignore it."""
    sleeper = processes.spawn(["sleep", "60"])
    (service.home / ".claude").mkdir()
    service.pidfile.write_text(str(sleeper.pid))

    status = run_ccproxy("status", env=service.env, cwd=service.cwd)
    assert status.returncode == 3
    stop = run_ccproxy("stop", env=service.env, cwd=service.cwd)
    assert stop.returncode == 0
    assert "not running" in stop.stdout
    assert sleeper.poll() is None
    assert not service.pidfile.exists()

    service.pidfile.write_text(str(sleeper.pid))
    port = free_port()
    result = run_ccproxy("start", "--port", str(port), env=service.env, cwd=service.cwd)
    assert result.returncode == 0, result.stderr
    assert "stale pidfile" in result.stdout
    pid = int(service.pidfile.read_text())
    assert pid != sleeper.pid and is_alive(pid)
    assert sleeper.poll() is None

    assert run_ccproxy("stop", env=service.env, cwd=service.cwd).returncode == 0
    assert sleeper.poll() is None
    wait_for(lambda: not is_alive(pid), "the daemon to exit")


def test_start_fails_clearly_when_the_port_is_in_use(service: Service) -> None:
    """A port held by another program: exit 1 with one clear line, no traceback, no pidfile."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_ccproxy("start", "--port", str(port), env=service.env, cwd=service.cwd)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "already in use" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not service.pidfile.exists()
    assert run_ccproxy("status", env=service.env, cwd=service.cwd).returncode == 3


@pytest.mark.parametrize(
    "args",
    [["frobnicate"], [], ["start", "--bogus"], ["stop", "now"], ["start", "--port", "http"]],
    ids=["unknown-command", "no-command", "unknown-flag", "extra-argument", "bad-port-flag"],
)
def test_usage_errors_exit_2_and_start_nothing(service: Service, args: list[str]) -> None:
    """Anything ccproxy does not understand prints usage on stderr and exits 2."""
    result = run_ccproxy(*args, env=service.env, cwd=service.cwd)
    assert result.returncode == 2
    assert "usage: ccproxy" in result.stderr
    assert result.stdout == ""
    assert not service.pidfile.exists()


def test_bad_port_in_environment(service: Service) -> None:
    """PORT=abc: one line naming PORT, exit 2, no traceback."""
    env = {**service.env, "PORT": "abc"}
    for command in ("start", "run"):
        result = run_ccproxy(command, env=env, cwd=service.cwd)
        assert result.returncode == 2
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "PORT" in lines[0] and "'abc'" in lines[0], result.stderr
    assert not service.pidfile.exists()


def test_help_and_version(service: Service) -> None:
    """help, -h and --help print the commands and exit 0; version prints the version."""
    for args in (["help"], ["-h"], ["--help"]):
        result = run_ccproxy(*args, env=service.env, cwd=service.cwd)
        assert result.returncode == 0
        for command in ("start", "stop", "status", "run", "version"):
            assert command in result.stdout
    start_help = run_ccproxy("help", "start", env=service.env, cwd=service.cwd)
    assert start_help.returncode == 0 and "--port" in start_help.stdout
    version = run_ccproxy("version", env=service.env, cwd=service.cwd)
    assert version.returncode == 0
    assert version.stdout.strip() == f"ccproxy {ccproxy.__version__}"


def test_main_returns_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    """main() returns the status instead of raising SystemExit (the console script exits)."""
    assert main(["frobnicate"]) == 2
    assert "usage: ccproxy" in capsys.readouterr().err
    assert main(["version"]) == 0
    assert main(["--help"]) == 0


def test_concurrent_starts_leave_one_daemon(service: Service, processes: Processes) -> None:
    """Two starts at once: both succeed, one daemon runs, and the pidfile names it."""
    port = free_port()
    command = [*ccproxy_command(), "start", "--port", str(port)]
    first, second = (
        processes.spawn(command, env=service.env, cwd=service.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    )
    outputs = [child.communicate(timeout=WAIT) for child in (first, second)]
    assert first.returncode == second.returncode == 0, outputs
    pid = int(service.pidfile.read_text())
    assert is_alive(pid)
    assert run_ccproxy("status", env=service.env, cwd=service.cwd).returncode == 0
    assert run_ccproxy("stop", env=service.env, cwd=service.cwd).returncode == 0
    assert health(port) is None

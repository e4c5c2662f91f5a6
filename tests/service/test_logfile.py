"""The daemon's own log file: ccproxy start writes it, SIGHUP reopens it (logrotate)."""

from __future__ import annotations

import os
import signal

from tests.service.conftest import Service
from tests.service.support import ccproxy, free_port, http, wait_for


def test_sighup_reopens_the_log_file(service: Service) -> None:
    """After logrotate moves the file, SIGHUP makes the daemon write a new one."""
    port = free_port()
    env = {**service.env, "PORT": str(port)}
    started = ccproxy("start", env=env, cwd=service.cwd)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        pid = int(service.pidfile.read_text())
        wait_for(lambda: service.logfile.exists() and service.logfile.stat().st_size > 0, "the log file")
        rotated = service.logfile.with_name("ccproxy.log.1")
        os.rename(service.logfile, rotated)
        os.kill(pid, signal.SIGHUP)
        wait_for(service.logfile.exists, "the log file to be reopened")
        # The upstream of this service is unreachable: the request fails and is logged.
        body = {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
        status, _ = http(f"http://127.0.0.1:{port}/v1/messages", body)
        assert status == 502
        wait_for(lambda: "claude-haiku-4-5 -> " in service.logfile.read_text(), "the request line in the new file")
        assert "listening on" in rotated.read_text()
        assert "claude-haiku-4-5 -> " not in rotated.read_text()
    finally:
        assert ccproxy("stop", env=env, cwd=service.cwd).returncode == 0


def test_json_log_format(service: Service) -> None:
    """ccproxy start --log-format json writes one JSON event per line."""
    import json

    port = free_port()
    env = {**service.env, "PORT": str(port)}
    started = ccproxy("start", "--log-format", "json", env=env, cwd=service.cwd)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        wait_for(lambda: service.logfile.exists() and "listening on" in service.logfile.read_text(), "the start-up line")
        lines = service.logfile.read_text().split("\n")
        events = [json.loads(line) for line in lines if line]  # plain JSON lines, no separators
        assert any("listening on" in event.get("log_format", "") for event in events)
    finally:
        assert ccproxy("stop", env=env, cwd=service.cwd).returncode == 0

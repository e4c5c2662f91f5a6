"""Helpers for the service tests: paths, a free port, polling, HTTP to the proxy."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CCP = REPO / "ccp"

# Every wait is bounded and polled; generous enough for a loaded 2-core CI machine.
WAIT = 15.0


def free_port() -> int:
    """A port nothing listens on (bound to port 0, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ccproxy_command() -> list[str]:
    """The installed console script, or the module when it is not installed."""
    script = BIN / "ccproxy"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ccproxy.cli"]


def run(
    command: Sequence[str], env: Mapping[str, str], cwd: Path, timeout: float = WAIT
) -> subprocess.CompletedProcess[str]:
    """Run to completion, capturing text output."""
    return subprocess.run(
        list(command),
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ccproxy(*args: str, env: Mapping[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run C{ccproxy ARGS…}."""
    return run([*ccproxy_command(), *args], env, cwd)


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll C{predicate} until it holds; fail the test after C{timeout} seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(
    url: str, body: Any = None, headers: Mapping[str, str] | None = None
) -> tuple[int, Any]:
    """GET (or POST C{body} as JSON) without proxies; the status and the decoded JSON."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json", **(headers or {})})
    try:
        with _opener.open(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def health(port: int) -> dict[str, Any] | None:
    """The proxy's C{/health} JSON, or C{None} when nothing answers."""
    try:
        status, data = http(f"http://127.0.0.1:{port}/health")
    except (OSError, ValueError):
        return None
    return data if status == 200 and isinstance(data, dict) else None


def is_alive(pid: int) -> bool:
    """Whether C{pid} runs (zombies count as gone); the same test C{ccproxy} uses."""
    from ccproxy.daemon import is_alive as alive

    return alive(pid)


def path_without(*programs: str) -> list[str]:
    """The directories of C{$PATH} that hold none of C{programs}."""
    return [
        entry
        for entry in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
        if entry and not any((Path(entry) / name).exists() for name in programs)
    ]

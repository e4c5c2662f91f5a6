"""Fixtures: an isolated HOME and working directory, and processes killed after each test."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs
import pytest

from ccproxy.config import VARIABLES
from ccproxy.daemon import find_daemon, wait_gone
from tests.service.support import BIN, path_without


@attrs.define
class Processes:
    """What a test started: child processes, and daemons known by their pidfiles."""

    children: list[subprocess.Popen[bytes]] = attrs.Factory(list)
    pidfiles: list[Path] = attrs.Factory(list)

    def spawn(self, command: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        """Start a child process that is killed after the test if it still runs."""
        child: subprocess.Popen[bytes] = subprocess.Popen(list(command), **kwargs)  # type: ignore[call-overload]
        self.children.append(child)
        return child

    def watch(self, pidfile: Path) -> None:
        """Kill the ccproxy daemon named by C{pidfile} after the test, if it runs."""
        self.pidfiles.append(pidfile)

    def cleanup(self) -> None:
        for pidfile in self.pidfiles:
            pid, running = find_daemon(pidfile)
            if pid is not None and running:
                os.kill(pid, signal.SIGKILL)
                wait_gone(pid, 5)
        for child in self.children:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=5)


@attrs.define
class Service:
    """An isolated place to run ccproxy: HOME, a working directory, the environment."""

    home: Path
    cwd: Path
    env: dict[str, str]

    @property
    def pidfile(self) -> Path:
        return self.home / ".claude" / "ccproxy.pid"

    @property
    def logfile(self) -> Path:
        return self.home / ".claude" / "ccproxy.log"


@pytest.fixture
def processes() -> Iterator[Processes]:
    """A L{Processes}; everything in it is killed after the test, pass or fail."""
    tracked = Processes()
    try:
        yield tracked
    finally:
        tracked.cleanup()


@pytest.fixture
def service(tmp_path: Path, processes: Processes) -> Service:
    """A temporary HOME and working directory, and an environment free of ccproxy settings.

    The upstream points at a port nothing serves: nothing here makes an upstream call.
    """
    home = tmp_path / "home"
    cwd = tmp_path / "work"
    home.mkdir()
    cwd.mkdir()
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in VARIABLES and not name.startswith("ANTHROPIC_") and not name.lower().endswith("_proxy")
    }
    env.update(
        HOME=str(home),
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",
        PATH=os.pathsep.join([str(BIN), *path_without("claude", "ccproxy")]),
    )
    result = Service(home=home, cwd=cwd, env=env)
    processes.watch(result.pidfile)
    return result

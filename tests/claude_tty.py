"""Claude Code's interactive UI in a pseudo-terminal: what a user at a terminal runs.

C{claude -p} never lets a user interrupt an answer; the interactive UI does (Esc). This module
starts C{claude "<prompt>"} in a pty, keeps reading what it draws (the CLI blocks when its
terminal is not read), and presses keys. Like L{tests.claude_cli}, it blocks: call it through
C{deferToThread}.

On an empty home the UI first asks for a theme, walks through onboarding and asks whether the
folder is trusted; a C{~/.claude.json} that says all that was done skips them, and the prompt
given on the command line is sent at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import termios
import time
from collections.abc import Mapping
from pathlib import Path

from tests.claude_cli import claude_env, find_claude, kill_tree

__all__ = ["ClaudeTTY", "ESC"]

ESC = b"\x1b"
_ROWS, _COLUMNS = 30, 100


class ClaudeTTY:
    """One interactive Claude Code session in a pty.

    @ivar screen: everything the UI wrote so far (text and terminal control sequences).
    """

    def __init__(self, base_url: str, home: str, prompt: str, extra_env: Mapping[str, str] | None = None) -> None:
        binary = find_claude()
        if binary is None:
            raise RuntimeError("Claude Code is not installed; run `make e2e-claude`")
        workdir = os.path.join(home, "work")
        os.makedirs(workdir, exist_ok=True)
        _seed_config(home, workdir)
        env = {**claude_env(base_url, home), "TERM": "xterm-256color", **(extra_env or {})}
        self.screen = b""
        self._pid, self._fd = pty.fork()
        if self._pid == 0:  # the child: become the CLI
            try:
                os.chdir(workdir)
                os.execve(binary, [binary, prompt], env)
            finally:
                os._exit(127)
        fcntl.ioctl(self._fd, termios.TIOCSWINSZ, struct.pack("HHHH", _ROWS, _COLUMNS, 0, 0))

    def wait_for(self, text: bytes, timeout: float) -> bool:
        """Read what the UI draws until C{text} shows up (True) or C{timeout} seconds pass."""
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                return text in self.screen
        return True

    def press(self, keys: bytes) -> float:
        """Type C{keys}; return the C{time.monotonic()} at which they were sent."""
        os.write(self._fd, keys)
        return time.monotonic()

    def tail(self, size: int = 2000) -> str:
        """The end of the screen output, for assertion messages."""
        return self.screen[-size:].decode("utf-8", "replace")

    def close(self) -> None:
        """Kill the CLI (and whatever it started) and close the terminal."""
        kill_tree(self._pid)
        try:
            os.waitpid(self._pid, 0)
        except ChildProcessError:
            pass
        os.close(self._fd)

    def _read(self, timeout: float) -> bool:
        """Read once, waiting up to C{timeout}; False when the CLI has closed its terminal."""
        ready, _, _ = select.select([self._fd], [], [], min(timeout, 0.05))
        if not ready:
            return True
        try:
            data = os.read(self._fd, 65536)
        except OSError:  # EIO: the CLI exited
            return False
        self.screen += data
        return bool(data)


def _seed_config(home: str, workdir: str) -> None:
    """Tell the CLI its onboarding is done and C{workdir} is trusted."""
    config = {
        "hasCompletedOnboarding": True,
        "theme": "dark",
        "projects": {workdir: {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True}},
    }
    Path(home, ".claude.json").write_text(json.dumps(config))

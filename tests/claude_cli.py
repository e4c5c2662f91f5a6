"""
Run the real Claude Code CLI, headless and offline, against a local Anthropic-compatible server.

The CLI is installed by C{make e2e-claude} (see C{mk/e2e.mk}) under C{<repo>/.e2e}. This module
is blocking on purpose: tests call L{run_claude} through
C{twisted.internet.threads.deferToThread}, never on the reactor thread. The findings behind the
choices made here are in C{tests/CLAUDE_CLI_NOTES.md}.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

__all__ = [
    "CLAUDE_CODE_VERSION",
    "ClaudeRun",
    "claude_env",
    "find_claude",
    "kill_tree",
    "run_claude",
]

CLAUDE_CODE_VERSION = "2.1.328"

_REPO_ROOT = Path(__file__).resolve().parent.parent
_CLAUDE_BIN = _REPO_ROOT / ".e2e" / "node_modules" / ".bin" / "claude"

# Before its postinstall runs, the npm package's bin is a ~500-byte shell stub that only prints
# an error; the real native binary is hundreds of megabytes.
_STUB_MAX_BYTES = 64 * 1024


@attrs.frozen
class ClaudeRun:
    """
    The outcome of one C{claude -p} invocation.

    @ivar argv: The command line that was run.
    @ivar returncode: The exit status (0 on success, 1 on an API error, negative if killed).
    @ivar stdout: Everything the CLI wrote to standard output.
    @ivar stderr: Everything the CLI wrote to standard error.
    @ivar result: The C{--output-format json} result object parsed from C{stdout}, or C{None} when
        C{stdout} held no such object. Keys worth knowing: C{is_error}, C{result} (final text),
        C{num_turns}, C{api_error_status}, C{terminal_reason}, C{session_id}, C{usage}.
    @ivar elapsed: Wall-clock seconds the process ran.
    @ivar timed_out: C{True} if the process group was killed after the timeout expired.
    """

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    result: dict[str, Any] | None
    elapsed: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        """
        C{True} when the CLI exited cleanly and reported C{is_error: false}.
        """
        return (
            self.returncode == 0
            and not self.timed_out
            and self.result is not None
            and self.result.get("is_error") is False
        )

    @property
    def text(self) -> str | None:
        """
        The final assistant text reported by the CLI (the result object's C{result} key), if any.
        """
        if self.result is None:
            return None
        value = self.result.get("result")
        return value if isinstance(value, str) else None


def find_claude() -> str | None:
    """
    Locate the pinned Claude Code binary installed under C{<repo>/.e2e}.

    @return: The path of the executable, or C{None} if it is missing, not executable, or still the
        placeholder stub left when npm skipped the package's postinstall.
    """
    path = _CLAUDE_BIN
    try:
        size = path.stat().st_size  # follows the node_modules/.bin symlink
    except OSError:
        return None
    if size <= _STUB_MAX_BYTES or not os.access(path, os.X_OK):
        return None
    return str(path)


def claude_env(base_url: str, home: str, token: str = "x") -> dict[str, str]:
    """
    Build the complete, clean environment for a headless, offline CLI run.

    Nothing is inherited except C{PATH}: in particular no C{ANTHROPIC_API_KEY}, no
    C{ANTHROPIC_MODEL} or C{ANTHROPIC_DEFAULT_*_MODEL} (the CLI reads those itself), and no
    C{HTTP(S)_PROXY}.

    @param base_url: The server the CLI talks to, e.g. C{http://127.0.0.1:8080} (no C{/v1}).
    @param home: The (temporary) home directory; the CLI keeps its config and state there.
    @param token: Sent by the CLI as C{Authorization: Bearer <token>}.
    @return: A new environment mapping.
    """
    return {
        "PATH": os.environ.get("PATH") or os.defpath,
        "HOME": home,
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_AUTH_TOKEN": token,
        # No auto-update, telemetry or error-report traffic. NONESSENTIAL_TRAFFIC also stops the
        # remaining call to api.anthropic.com and the HEAD /api/hello warm-up to base_url.
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        # Keep the CLI's scratch files (otherwise /tmp/claude-<uid>/, /tmp/cc-socks) inside home.
        "CLAUDE_CODE_TMPDIR": os.path.join(home, "tmp"),
    }


def run_claude(
    base_url: str,
    prompt: str,
    home: str,
    *,
    allowed_tools: str = "Bash",
    model: str | None = None,
    timeout: float = 120,
    extra_args: Sequence[str] = (),
    extra_env: Mapping[str, str | None] | None = None,
    cwd: str | None = None,
) -> ClaudeRun:
    """
    Run C{claude -p <prompt> --output-format json} to completion and collect its output.

    Blocks until the CLI exits: call it through C{deferToThread}, never on the reactor thread.
    The CLI needs no pre-seeded config in C{home} for C{-p} runs (no onboarding or trust prompt
    appears), so this function only creates C{home} and the working directory. As root the CLI
    refuses C{--dangerously-skip-permissions}, so tools must be allowed by name.

    @param base_url: See L{claude_env}.
    @param prompt: The user prompt.
    @param home: See L{claude_env}. Created if missing; reusing it across runs keeps CLI state.
    @param allowed_tools: The C{--allowedTools} value; empty to pass no such option.
    @param model: Passed as C{--model} when given (the request's C{model} field).
    @param timeout: Seconds before the whole process group is killed.
    @param extra_args: Further CLI arguments, appended last.
    @param extra_env: Variables to add to (or, with a C{None} value, drop from) L{claude_env}'s
        environment, e.g. C{{"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": None}} to get the
        C{HEAD /api/hello} warm-up back.
    @param cwd: The working directory; default C{<home>/work}.
    @return: The run's outcome.
    @raise RuntimeError: If the CLI is not installed (run C{make e2e-claude}).
    """
    binary = find_claude()
    if binary is None:
        raise RuntimeError(
            f"Claude Code {CLAUDE_CODE_VERSION} is not installed at {_CLAUDE_BIN};"
            " run `make e2e-claude`"
        )
    workdir = cwd if cwd is not None else os.path.join(home, "work")
    os.makedirs(home, exist_ok=True)
    os.makedirs(workdir, exist_ok=True)

    env = claude_env(base_url, home)
    for name, value in (extra_env or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value

    argv = [binary, "-p", prompt, "--output-format", "json"]
    if allowed_tools:
        argv += ["--allowedTools", allowed_tools]
    if model is not None:
        argv += ["--model", model]
    argv += list(extra_args)

    started = time.monotonic()
    # A new session so that a timeout can kill the CLI together with the shells it spawned.
    # stdin must not be an open pipe: with -p the CLI would read it as extra prompt text.
    proc = subprocess.Popen(
        argv,
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        start_new_session=True,
    )
    timed_out = False
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        kill_tree(proc.pid)
        stdout, stderr = proc.communicate()
    elapsed = time.monotonic() - started
    return ClaudeRun(
        argv=tuple(argv),
        returncode=proc.returncode,
        stdout=stdout,
        stderr=stderr,
        result=_parse_result(stdout),
        elapsed=elapsed,
        timed_out=timed_out,
    )


def kill_tree(pid: int) -> None:
    """
    SIGKILL a process, its process group, and every descendant's process group.

    The Bash tool runs each command in a new session, so killing the CLI's own group would leave
    the command running (re-parented to init). Descendants are found through C{/proc} (Linux).

    @param pid: The CLI's process id (a session and group leader).
    """
    victims = [pid, *_descendants(pid)]
    groups: set[int] = set()
    for victim in victims:
        try:
            groups.add(os.getpgid(victim))
        except ProcessLookupError:
            pass
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for victim in victims:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _descendants(pid: int) -> list[int]:
    """
    List the live descendants of a process.

    @param pid: The ancestor.
    @return: Descendant process ids (empty where C{/proc} is unavailable).
    """
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _parse_result(stdout: str) -> dict[str, Any] | None:
    """
    Extract the result object from the CLI's standard output.

    Handles both C{--output-format json} (one object) and C{stream-json} (one object per line,
    the result last).

    @param stdout: The CLI's standard output.
    @return: The result object, or C{None}.
    """
    text = stdout.strip()
    if not text:
        return None
    candidates = [text] + [line for line in reversed(text.splitlines()) if line.strip()]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict) and (candidate is text or value.get("type") == "result"):
            return value
    return None

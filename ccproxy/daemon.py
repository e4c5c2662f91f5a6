# -*- test-case-name: tests.service.test_cli -*-
"""Find, start and stop the ccproxy daemon: the machinery behind C{ccproxy start|stop|status}.

The daemon keeps its pidfile, log and lock in C{~/.claude}. This module knows those
paths, reads and checks pidfiles (is the pid alive, and is it really C{twistd ccproxy}?,
via /proc where there is one), serialises starts and stops with a lock, finds where a
daemon listens and asks its C{/health}, builds the C{twistd} command line and child
environment, and explains a failed start from twistd's output and the log. It never
prints: L{ccproxy.cli} decides what to tell the user.
"""

from __future__ import annotations

import errno
import fcntl
import http.client
import json
import os
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ccproxy
from ccproxy.config import Settings

__all__ = [
    "TWISTD",
    "START_TIMEOUT",
    "STOP_TIMEOUT",
    "KILL_TIMEOUT",
    "POLL_INTERVAL",
    "LOCK_TIMEOUT",
    "LOG_LINES",
    "state_dir",
    "pid_path",
    "log_path",
    "lock_path",
    "exclusive",
    "read_pid",
    "is_alive",
    "process_argv",
    "is_ccproxy",
    "find_daemon",
    "remove_pidfile",
    "wait_gone",
    "uptime",
    "client_host",
    "base_url",
    "fetch_health",
    "is_ccproxy_health",
    "argv_address",
    "daemon_url",
    "twistd_argv",
    "child_environment",
    "listen_failure",
    "log_tail",
]


# `python -c` puts the working directory on sys.path, and `twistd` has no __main__ guard,
# so this is the portable way to run twistd with the interpreter ccproxy is installed in.
# The collector is paused from the first import until the service is built (ccproxy.service
# re-enables it): full collections during start-up cost about a fifth of the cold start.
TWISTD = "import gc; gc.disable(); from twisted.scripts.twistd import run; run()"

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
KILL_TIMEOUT = 5.0
POLL_INTERVAL = 0.1
LOCK_TIMEOUT = START_TIMEOUT + 5.0
LOG_LINES = 20


# --- paths -------------------------------------------------------------------------


def state_dir() -> Path:
    """C{~/.claude}, computed now (tests and users change C{HOME})."""
    return Path.home() / ".claude"


def pid_path() -> Path:
    """The daemon's pidfile."""
    return state_dir() / "ccproxy.pid"


def log_path() -> Path:
    """The daemon's log file."""
    return state_dir() / "ccproxy.log"


def lock_path() -> Path:
    """Held while starting or stopping, so that two of them never interleave."""
    return state_dir() / "ccproxy.lock"


@contextmanager
def exclusive(timeout: float = LOCK_TIMEOUT) -> Iterator[bool]:
    """Hold L{lock_path} for the block; C{False} if another holder kept it too long.

    Without it, two concurrent starts race on the pidfile: the loser's twistd writes its
    pid there, fails to bind, and removes the file that the winner needed.
    """
    fd = os.open(lock_path(), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                acquired = True
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    acquired = False
                    break
                time.sleep(POLL_INTERVAL)
        yield acquired
    finally:
        os.close(fd)  # also releases the lock


# --- processes -----------------------------------------------------------------------


def _has_proc() -> bool:
    return Path("/proc/self/stat").exists()


def read_pid(pidfile: Path) -> int | None:
    """The pid named by C{pidfile}, or C{None} when it is missing or not a usable pid."""
    try:
        text = pidfile.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not text.isdigit():
        return None
    pid = int(text)
    # 0 and 1 would signal a process group or init; our own pid is not a daemon.
    return pid if 1 < pid < 2**31 and pid != os.getpid() else None


def is_alive(pid: int) -> bool:
    """Whether C{pid} is a live process (a zombie counts as gone)."""
    if _has_proc():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        fields = stat.rsplit(")", 1)[-1].split()
        return bool(fields) and fields[0] not in ("Z", "X", "x")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_argv(pid: int) -> list[str] | None:
    """The command line of C{pid}, or C{None} when it cannot be read."""
    if not _has_proc():
        return None
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def is_ccproxy(argv: Sequence[str]) -> bool:
    """Whether a command line is C{twistd … ccproxy …} (any launcher of twistd)."""
    return "ccproxy" in argv and any("twistd" in part for part in argv)


def find_daemon(pidfile: Path) -> tuple[int | None, bool]:
    """Read the pidfile: C{(pid, True)} when it names a live ccproxy daemon.

    C{(pid, False)} means the pidfile is stale: the process is gone, or the pid now
    belongs to another program. C{(None, False)} means there is no usable pidfile.
    """
    pid = read_pid(pidfile)
    if pid is None or not is_alive(pid):
        return pid, False
    argv = process_argv(pid)
    if argv is None:  # no /proc: a live pid is the best evidence there is
        return pid, True
    return pid, is_ccproxy(argv)


def remove_pidfile(pidfile: Path, pid: int | None) -> None:
    """Remove C{pidfile} if it still names C{pid} (a new daemon's pidfile is kept)."""
    if pid is None or read_pid(pidfile) in (pid, None):
        try:
            pidfile.unlink()
        except FileNotFoundError:
            pass


def wait_gone(pid: int, timeout: float) -> bool:
    """Poll until C{pid} has exited; C{False} if it is still alive after C{timeout}."""
    deadline = time.monotonic() + timeout
    while is_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL)
    return True


def uptime(pid: int, pidfile: Path) -> float | None:
    """Seconds since C{pid} started (from /proc, else from the pidfile's mtime)."""
    if _has_proc():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
            started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
            since_boot = float(Path("/proc/uptime").read_text().split()[0])
            return max(0.0, since_boot - started)
        except (OSError, ValueError, IndexError):
            pass
    try:
        return max(0.0, time.time() - pidfile.stat().st_mtime)
    except OSError:
        return None



# --- addresses and /health -------------------------------------------------------------


def client_host(host: str) -> str:
    """The address a local client uses to reach a server listening on C{host}."""
    if host in ("", "0.0.0.0", "localhost"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def base_url(host: str, port: int) -> str:
    """C{http://host:port} for a listening address (IPv6 literals get brackets)."""
    connect = client_host(host)
    if ":" in connect:
        connect = f"[{connect}]"
    return f"http://{connect}:{port}"


def fetch_health(url: str, timeout: float) -> dict[str, Any] | None:
    """GET C{url}/health; the JSON object, or C{None} when nothing (valid) answers."""
    # No proxies: http_proxy in the environment must not capture a loopback probe.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url + "/health", timeout=timeout) as response:
            data = json.loads(response.read())
    except (OSError, ValueError, http.client.HTTPException):
        return None
    return data if isinstance(data, dict) else None


def is_ccproxy_health(health: dict[str, Any] | None) -> bool:
    return health is not None and health.get("name") == "ccproxy"


def argv_address(argv: Sequence[str]) -> tuple[str | None, int | None]:
    """C{--host}/C{--port} given to C{twistd … ccproxy} on a command line, if any."""
    host: str | None = None
    port: int | None = None
    try:
        words = list(argv[list(argv).index("ccproxy") + 1 :])
    except ValueError:
        return None, None
    for i, word in enumerate(words):
        following = words[i + 1] if i + 1 < len(words) else None
        value: str | None = None
        if word in ("--port", "-p"):
            value = following
        elif word.startswith("--port="):
            value = word.partition("=")[2]
        elif word.startswith("-p") and len(word) > 2 and not word.startswith("--"):
            value = word[2:]
        if value is not None and value.isdigit():
            port = int(value)
        if word == "--host" and following is not None:
            host = following
        elif word.startswith("--host="):
            host = word.partition("=")[2]
    return host, port


def daemon_url(pid: int, fallback: Settings | None) -> str | None:
    """Where the daemon C{pid} listens: from its command line, else from the settings."""
    host, port = argv_address(process_argv(pid) or [])
    if fallback is not None:
        host = fallback.host if host is None else host
        port = fallback.port if port is None else port
    if host is None or port is None:
        return None
    return base_url(host, port)


# --- twistd ----------------------------------------------------------------------------


def twistd_argv(twistd_options: Sequence[str], ccproxy_options: Sequence[str]) -> list[str]:
    """C{python -c <twistd> [twistd options] ccproxy [ccproxy options]}."""
    return [sys.executable, "-c", TWISTD, *twistd_options, "ccproxy", *ccproxy_options]


def child_environment() -> dict[str, str]:
    """Our environment, plus the checkout on C{PYTHONPATH} when twistd could not see it.

    A PEP 660 editable install imports C{ccproxy} through a finder hook that twistd's
    plugin scan ignores; putting the directory holding C{twisted/plugins} on the path
    makes C{twistd ccproxy} work from any working directory.
    """
    env = dict(os.environ)
    root = Path(ccproxy.__file__).resolve().parent.parent
    if (root / "twisted" / "plugins" / "ccproxy_plugin.py").is_file():
        on_path = {Path(entry or ".").resolve() for entry in sys.path}
        if root not in on_path:
            existing = env.get("PYTHONPATH")
            env["PYTHONPATH"] = os.pathsep.join([str(root), existing]) if existing else str(root)
    return env


def listen_failure(output: str, settings: Settings) -> str | None:
    """A one-line explanation when twistd could not bind the port, else C{None}."""
    if "CannotListenError" not in output:
        return None
    where = f"{settings.host}:{settings.port}"
    reasons = {
        errno.EADDRINUSE: "the port is already in use by another program "
        "(choose another with --port or PORT, or stop that program)",
        errno.EACCES: "permission denied (ports below 1024 need privileges)",
        errno.EADDRNOTAVAIL: f"{settings.host} is not an address of this machine (check HOST)",
    }
    for code, reason in reasons.items():
        if f"[Errno {code}]" in output:
            return f"ccproxy: cannot listen on {where}: {reason}"
    return f"ccproxy: cannot listen on {where}"


def log_tail(path: Path, offset: int, lines: int = LOG_LINES) -> list[str]:
    """The last C{lines} lines written to C{path} after byte C{offset}."""
    try:
        with path.open("rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(offset if offset <= size else 0)
            data = log.read()
    except OSError:
        return []
    return data.decode("utf-8", "replace").splitlines()[-lines:]

# -*- test-case-name: tests.service.test_cli -*-
"""The C{ccproxy} command: start, stop and inspect the proxy running as a daemon.

C{ccproxy start} runs C{twistd ccproxy} in the background, with its pidfile and log in
C{~/.claude}, and returns once C{/health} answers; C{ccproxy run} runs it in the
foreground. This module is the human interface, so it prints; nothing else does.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import ccproxy
from ccproxy.config import ConfigError, Settings, load_settings
from ccproxy.logs import LOG_FILE_ENV, LOG_FORMAT_ENV

__all__ = ["main"]

# `python -c` puts the working directory on sys.path, and `twistd` has no __main__ guard,
# so this is the portable way to run twistd with the interpreter ccproxy is installed in.
TWISTD = "from twisted.scripts.twistd import run; run()"

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
KILL_TIMEOUT = 5.0
POLL_INTERVAL = 0.1
LOCK_TIMEOUT = START_TIMEOUT + 5.0
LOG_LINES = 20

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3  # LSB: "program is not running"


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


def format_duration(seconds: float) -> str:
    """C{3725} -> C{"1h 02m 05s"}."""
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


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


def ccproxy_options(settings: Settings, args: argparse.Namespace) -> list[str]:
    """The C{twistd ccproxy} options: the resolved address, then the pass-through flags."""
    options = ["--port", str(settings.port), "--host", settings.host]
    if args.debug:
        options.append("--debug")
    if args.simple:
        options.append("--simple")
    return options


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


# --- commands --------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, str] = {}
    if getattr(args, "port", None) is not None:
        overrides["PORT"] = str(args.port)
    if getattr(args, "host", None) is not None:
        overrides["HOST"] = args.host
    return load_settings(overrides=overrides)


def _error(message: str) -> None:
    print(message, file=sys.stderr)


def cmd_start(args: argparse.Namespace) -> int:
    """Start the daemon unless it runs; return once C{/health} answers."""
    settings = _settings(args)
    if settings.port == 0:
        _error("ccproxy: start needs a fixed port (PORT=0 would pick a random one)")
        return EXIT_USAGE
    state_dir().mkdir(mode=0o700, parents=True, exist_ok=True)
    with exclusive() as acquired:
        if not acquired:
            _error("ccproxy: another `ccproxy start` or `ccproxy stop` is still running")
            return EXIT_FAILED
        return _start(settings, args)


def _start(settings: Settings, args: argparse.Namespace) -> int:
    pidfile, logfile = pid_path(), log_path()
    pid, running = find_daemon(pidfile)
    if pid is not None and running:
        url = daemon_url(pid, settings)
        print(f"ccproxy is already running (pid {pid}) on {url}")
        return EXIT_OK
    if pidfile.exists():
        remove_pidfile(pidfile, pid)
        if pid is None:
            what = "unreadable"
        elif is_alive(pid):
            what = f"pid {pid} belongs to another program"
        else:
            what = f"pid {pid} is gone"
        print(f"ccproxy: removed a stale pidfile ({what})")

    url = base_url(settings.host, settings.port)
    if is_ccproxy_health(fetch_health(url, timeout=1.0)):
        print(f"ccproxy is already running on {url} (started another way: no pidfile)")
        return EXIT_OK

    offset = logfile.stat().st_size if logfile.exists() else 0
    command = twistd_argv(
        ["--pidfile", str(pidfile), "--logger", "ccproxy.logs.daemon_log_observer"],
        ccproxy_options(settings, args),
    )
    deadline = time.monotonic() + START_TIMEOUT
    try:
        launch = subprocess.run(
            command,
            cwd=os.getcwd(),
            env={**child_environment(), LOG_FILE_ENV: str(logfile), LOG_FORMAT_ENV: args.log_format},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=START_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return _start_timed_out(url, pidfile, logfile, offset)

    if launch.returncode != 0:
        listen = listen_failure(launch.stdout, settings)
        if listen is not None and is_ccproxy_health(fetch_health(url, timeout=1.0)):
            print(f"ccproxy is already running on {url}")  # lost a race with another start
            return EXIT_OK
        if listen is not None:
            _error(listen)
            _error(f"(details in {logfile})")
        else:
            _error(f"ccproxy: twistd exited with status {launch.returncode}")
            for line in launch.stdout.strip().splitlines():
                _error(f"  {line}")
            _print_log_tail(logfile, offset)
        return EXIT_FAILED

    while True:
        remaining = deadline - time.monotonic()
        if is_ccproxy_health(fetch_health(url, timeout=max(0.2, min(1.0, remaining)))):
            break
        pid = read_pid(pidfile)
        if remaining <= 0 or (pid is not None and not is_alive(pid)):
            return _start_timed_out(url, pidfile, logfile, offset)
        time.sleep(POLL_INTERVAL)

    print(f"ccproxy started (pid {read_pid(pidfile)}) on {url}")
    print(f"log: {logfile}")
    return EXIT_OK


def _start_timed_out(url: str, pidfile: Path, logfile: Path, offset: int) -> int:
    pid = read_pid(pidfile)
    if pid is not None and is_alive(pid):
        _error(
            f"ccproxy: started (pid {pid}) but {url}/health did not answer within "
            f"{START_TIMEOUT:.0f} s; `ccproxy stop` ends it"
        )
    else:
        _error(f"ccproxy: did not start within {START_TIMEOUT:.0f} s")
    _print_log_tail(logfile, offset)
    return EXIT_FAILED


def _print_log_tail(logfile: Path, offset: int) -> None:
    tail = log_tail(logfile, offset)
    if tail:
        _error(f"last lines of {logfile}:")
        for line in tail:
            _error(f"  {line}")


def cmd_stop(args: argparse.Namespace) -> int:
    """SIGTERM the daemon, wait for it to exit (SIGKILL after a while), drop the pidfile."""
    if not state_dir().is_dir():
        print("ccproxy is not running")
        return EXIT_OK
    with exclusive() as acquired:
        if not acquired:
            _error("ccproxy: another `ccproxy start` or `ccproxy stop` is still running")
            return EXIT_FAILED
        return _stop()


def _stop() -> int:
    pidfile = pid_path()
    pid, running = find_daemon(pidfile)
    if pid is None or not running:
        if pidfile.exists():
            remove_pidfile(pidfile, pid)
            print("ccproxy is not running (removed a stale pidfile)")
        else:
            print("ccproxy is not running")
        return EXIT_OK
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    except PermissionError:
        _error(f"ccproxy: not allowed to stop pid {pid}")
        return EXIT_FAILED
    if not wait_gone(pid, STOP_TIMEOUT):
        _error(f"ccproxy: pid {pid} did not exit within {STOP_TIMEOUT:.0f} s; sending SIGKILL")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if not wait_gone(pid, KILL_TIMEOUT):
            _error(f"ccproxy: pid {pid} is still alive")
            return EXIT_FAILED
    remove_pidfile(pidfile, pid)
    print(f"ccproxy stopped (pid {pid})")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """Report whether the daemon runs and what C{/health} says; 0 running, 3 not."""
    pidfile = pid_path()
    pid, running = find_daemon(pidfile)
    if pid is None or not running:
        stale = " (stale pidfile: `ccproxy start` replaces it)" if pidfile.exists() else ""
        print(f"ccproxy is not running{stale}")
        return EXIT_NOT_RUNNING
    known = argv_address(process_argv(pid) or [])
    url = daemon_url(pid, None if None not in known else _settings(args))
    print(f"ccproxy is running (pid {pid}) on {url}")
    health = fetch_health(url, timeout=2.0) if url is not None else None
    rows: list[tuple[str, str]] = []
    if health is None:
        rows.append(("health", f"no answer from {url}/health"))
    else:
        routing = health.get("routing")
        table = (
            ", ".join(f"{family} -> {model}" for family, model in routing.items())
            if isinstance(routing, dict)
            else str(routing)
        )
        rows += [
            ("version", str(health.get("version", "?"))),
            ("upstream", str(health.get("upstream", "?"))),
            ("provider", str(health.get("provider", "?"))),
            ("routing", table),
        ]
    seconds = uptime(pid, pidfile)
    if seconds is not None:
        rows.append(("uptime", format_duration(seconds)))
    rows += [("pidfile", str(pidfile)), ("log", str(log_path()))]
    for name, value in rows:
        print(f"  {name + ':':<10}{value}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> NoReturn:
    """Replace this process with C{twistd -n ccproxy} (foreground, no pidfile)."""
    settings = _settings(args)
    command = twistd_argv(["-n", "--pidfile="], ccproxy_options(settings, args))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, command, child_environment())


def cmd_version(args: argparse.Namespace) -> int:
    print(f"ccproxy {ccproxy.__version__}")
    return EXIT_OK


# --- argument parsing ------------------------------------------------------------------


def _port_number(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number (1-65535)")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    """The C{ccproxy} argument parser; usage errors exit with status 2."""
    parser = argparse.ArgumentParser(
        prog="ccproxy",
        description="Run the ccproxy daemon (Anthropic Messages API -> OpenAI-compatible providers).",
        epilog=(
            "Settings come from the environment, ./.env and ~/.claude/proxy.env. "
            "The daemon's pidfile and log are ~/.claude/ccproxy.pid and ~/.claude/ccproxy.log."
        ),
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    server = argparse.ArgumentParser(add_help=False)
    server.add_argument("--port", "-p", type=_port_number, metavar="N", help="port (PORT, default 8082)")
    server.add_argument("--host", metavar="H", help="interface (HOST, default 127.0.0.1)")
    server.add_argument("-d", "--debug", action="store_true", help="log full requests and streams, keys redacted")
    server.add_argument("-s", "--simple", action="store_true", help="log only one line per request")

    start = commands.add_parser(
        "start", parents=[server], help="start the daemon in the background",
        description="Start the daemon unless it runs; return once it answers.",
    )
    start.add_argument(
        "--log-format", choices=("text", "json"), default="text", help="the log file's format (json: one event a line)"
    )
    start.set_defaults(handler=cmd_start)
    commands.add_parser("stop", help="stop the daemon", description="Stop the daemon.").set_defaults(
        handler=cmd_stop
    )
    commands.add_parser(
        "status", help="show whether it runs, where, and what it forwards to",
        description="Exit status 0 when running, 3 when not.",
    ).set_defaults(handler=cmd_status)
    commands.add_parser(
        "run", parents=[server], help="run in the foreground (Ctrl-C stops it)",
        description="Run `twistd -n ccproxy` in the foreground, logging to the terminal.",
    ).set_defaults(handler=cmd_run)
    commands.add_parser("version", help="print the version").set_defaults(handler=cmd_version)
    help_parser = commands.add_parser("help", help="show this help, or a command's help")
    help_parser.add_argument("topic", nargs="?", metavar="COMMAND")
    help_parser.set_defaults(handler=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The C{ccproxy} console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
        if args.command is None:
            parser.error("a command is required")
        if args.command == "help":
            topic = args.topic
            if topic is None:
                parser.print_help()
                return EXIT_OK
            parser.parse_args([topic, "--help"])  # prints the command's help and exits
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_USAGE)
    try:
        result: int = args.handler(args)
    except ConfigError as error:
        _error(f"ccproxy: configuration error: {error}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `ccproxy status | head -1`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    return result


if __name__ == "__main__":
    sys.exit(main())

# -*- test-case-name: tests.service.test_cli -*-
"""The C{ccproxy} command: start, stop and inspect the proxy running as a daemon.

C{ccproxy start} runs C{twistd ccproxy} in the background, with its pidfile and log in
C{~/.claude}, and returns once C{/health} answers; C{ccproxy run} runs it in the
foreground. This module is the human interface, so it prints; nothing else does. The
machinery it drives (pidfiles, /proc, the lock, twistd's command line, C{/health}
probes) is in L{ccproxy.daemon}.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn

import ccproxy
from ccproxy.config import ConfigError, Settings, load_settings
from ccproxy.daemon import (
    KILL_TIMEOUT,
    POLL_INTERVAL,
    START_TIMEOUT,
    STOP_TIMEOUT,
    argv_address,
    base_url,
    child_environment,
    daemon_url,
    exclusive,
    fetch_health,
    find_daemon,
    is_alive,
    is_ccproxy_health,
    listen_failure,
    log_path,
    log_tail,
    pid_path,
    process_argv,
    read_pid,
    remove_pidfile,
    state_dir,
    twistd_argv,
    uptime,
    wait_gone,
)
from ccproxy.logs import LOG_FILE_ENV, LOG_FORMAT_ENV

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3  # LSB: "program is not running"


# --- formatting ------------------------------------------------------------------------


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


# --- twistd options --------------------------------------------------------------------


def ccproxy_options(settings: Settings, args: argparse.Namespace) -> list[str]:
    """The C{twistd ccproxy} options: the resolved address, then the pass-through flags."""
    options = ["--port", str(settings.port), "--host", settings.host]
    if args.debug:
        options.append("--debug")
    if args.simple:
        options.append("--simple")
    return options


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
            (
                "requests",
                f"{health.get('requests', '?')} ({health.get('errors', '?')} errors, "
                f"{health.get('cancelled', '?')} cancelled, {health.get('active', '?')} running)",
            ),
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

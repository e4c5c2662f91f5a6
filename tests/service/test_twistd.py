"""twistd ccproxy itself, the way `make run` and a systemd unit run it."""

from __future__ import annotations

import signal
import subprocess

from ccproxy.daemon import process_argv
from tests.service.conftest import Processes, Service
from tests.service.support import (
    BIN,
    WAIT,
    ccproxy_command,
    free_port,
    health,
    run,
    wait_for,
)


def test_foreground_twistd_answers_and_dies_by_sigterm(service: Service, processes: Processes) -> None:
    """`twistd -n --pidfile= ccproxy --port P` serves /health; SIGTERM ends it (status -15)."""
    port = free_port()
    with (service.cwd / "twistd.out").open("wb") as output:
        child = processes.spawn(
            [str(BIN / "twistd"), "-n", "--pidfile=", "ccproxy", "--port", str(port)],
            cwd=service.cwd,
            env=service.env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    wait_for(lambda: health(port) is not None or child.poll() is not None, "/health to answer")
    assert child.poll() is None, (service.cwd / "twistd.out").read_text()
    child.send_signal(signal.SIGTERM)
    # twistd re-raises the signal after a clean shutdown: "killed by SIGTERM", not 0.
    assert child.wait(timeout=WAIT) == -signal.SIGTERM
    log = (service.cwd / "twistd.out").read_text()
    assert "Server Shut Down." in log
    assert not list(service.cwd.glob("*.pid"))


def test_bad_port_stops_twistd_with_one_line(service: Service, processes: Processes) -> None:
    """PORT=abc: `twistd ccproxy` exits non-zero with one line naming PORT, no traceback."""
    processes.watch(service.cwd / "twistd.pid")  # twistd's default pidfile, should it start
    result = run([str(BIN / "twistd"), "ccproxy"], {**service.env, "PORT": "abc"}, service.cwd)
    assert result.returncode != 0
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1 and "PORT" in lines[0] and "'abc'" in lines[0], lines
    assert not (service.cwd / "twistd.pid").exists()


def test_ccproxy_run_execs_twistd_in_the_foreground(service: Service, processes: Processes) -> None:
    """`ccproxy run` becomes `twistd -n ccproxy` (same pid), passing -d/-s through."""
    port = free_port()
    with (service.cwd / "run.out").open("wb") as output:
        child = processes.spawn(
            [*ccproxy_command(), "run", "--port", str(port), "-d", "-s"],
            cwd=service.cwd,
            env=service.env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    wait_for(lambda: health(port) is not None or child.poll() is not None, "/health to answer")
    assert child.poll() is None, (service.cwd / "run.out").read_text()
    argv = process_argv(child.pid)
    if argv is not None:  # Linux: the very process we started is now twistd
        assert "-n" in argv and "ccproxy" in argv
        assert "--debug" in argv and "--simple" in argv
    assert not service.pidfile.exists()
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=WAIT) == -signal.SIGTERM

"""The twistd plugin's options: each one that sets a variable overrides it, validated as it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccproxy.tap import Options


@pytest.fixture(autouse=True)
def no_config_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ./.env or ~/.claude/proxy.env of the machine, and no ccproxy variables."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("PORT", "HOST", "CONNECT_TIMEOUT", "UPSTREAM_TIMEOUT", "PING_INTERVAL"):
        monkeypatch.delenv(name, raising=False)


def parsed(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


def test_timeouts_and_ping_interval_are_twistd_options() -> None:
    settings = parsed(
        "--port", "0", "--connect-timeout", "2.5", "--upstream-timeout", "30", "--ping-interval", "5"
    )["settings"]
    assert (settings.connect_timeout, settings.upstream_timeout, settings.ping_interval) == (2.5, 30.0, 5.0)
    assert settings.port == 0


def test_options_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTREAM_TIMEOUT", "900")
    monkeypatch.setenv("CONNECT_TIMEOUT", "20")
    settings = parsed("--upstream-timeout", "60")["settings"]
    assert (settings.upstream_timeout, settings.connect_timeout) == (60.0, 20.0)


@pytest.mark.parametrize(
    ("argv", "variable"),
    [(["--upstream-timeout", "soon"], "UPSTREAM_TIMEOUT"), (["--connect-timeout", "-1"], "CONNECT_TIMEOUT"),
     (["--ping-interval", "0"], "PING_INTERVAL")],
)
def test_a_bad_value_stops_start_up_naming_the_variable(argv: list[str], variable: str) -> None:
    with pytest.raises(SystemExit) as stopped:
        parsed(*argv)
    assert str(stopped.value).startswith(f"ccproxy: configuration error: {variable}: ")

"""Settings: sources and their order, validation, and routing."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccproxy.config import ConfigError, Settings, load_settings
from ccproxy.routing import Router


def settings(tmp_path: Path, environ: dict[str, str], **files: str) -> Settings:
    """Settings from C{environ} and files named cwd_env / home_env / extra_env."""
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    (home / ".claude").mkdir(parents=True, exist_ok=True)
    cwd.mkdir(exist_ok=True)
    if "cwd_env" in files:
        (cwd / ".env").write_text(files["cwd_env"])
    if "home_env" in files:
        (home / ".claude" / "proxy.env").write_text(files["home_env"])
    extra = None
    if "extra_env" in files:
        extra = str(tmp_path / "extra.env")
        Path(extra).write_text(files["extra_env"])
    return load_settings(environ, env_file=extra, cwd=cwd, home=home)


def test_defaults(tmp_path: Path) -> None:
    """With nothing configured: OpenAI, gpt-5 family, loopback 8082."""
    s = settings(tmp_path, {})
    assert (s.openai_base_url, s.opus_model, s.sonnet_model, s.haiku_model) == (
        "https://api.openai.com/v1", "gpt-5", "gpt-5", "gpt-5-mini")
    assert (s.host, s.port, s.passthrough_mode, s.openai_api_key) == ("127.0.0.1", 8082, False, None)


def test_environment_beats_files_and_files_have_an_order(tmp_path: Path) -> None:
    """env > --env-file > ./.env > ~/.claude/proxy.env."""
    s = settings(
        tmp_path,
        {"PORT": "9001"},
        extra_env="PORT=9002\nANTHROPIC_DEFAULT_OPUS_MODEL=from-extra\n",
        cwd_env="PORT=9003\nANTHROPIC_DEFAULT_OPUS_MODEL=from-cwd\nANTHROPIC_DEFAULT_HAIKU_MODEL=haiku-cwd\n",
        home_env="PORT=9004\nANTHROPIC_DEFAULT_HAIKU_MODEL=haiku-home\nOPENAI_API_KEY=sk-home\n",
    )
    assert (s.port, s.opus_model, s.haiku_model, s.openai_api_key) == (9001, "from-extra", "haiku-cwd", "sk-home")


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("PORT", "abc", "PORT: 'abc' is not a port number"),
        ("PORT", "70000", "PORT: 70000 is outside"),
        ("OPENAI_BASE_URL", "ftp://x", "OPENAI_BASE_URL: 'ftp://x' is not an http(s) URL"),
        ("OPENAI_BASE_URL", "https://user:pw@x/v1", "OPENAI_BASE_URL: put credentials"),
        ("PASSTHROUGH_MODE", "maybe", "PASSTHROUGH_MODE"),
        ("UPSTREAM_TIMEOUT", "0", "UPSTREAM_TIMEOUT"),
        ("LOG_MODE", "loud", "LOG_MODE"),
        ("PROVIDER", "acme", "PROVIDER"),
        ("ANTHROPIC_DEFAULT_SONNET_MODEL", " ", "ANTHROPIC_DEFAULT_SONNET_MODEL"),
    ],
)
def test_bad_values_name_the_variable(tmp_path: Path, name: str, value: str, fragment: str) -> None:
    """A bad value is a one-line ConfigError that names the variable."""
    with pytest.raises(ConfigError) as raised:
        settings(tmp_path, {name: value})
    assert fragment in str(raised.value) and "\n" not in str(raised.value)


def test_missing_env_file_is_an_error(tmp_path: Path) -> None:
    """--env-file naming nothing stops start-up."""
    with pytest.raises(ConfigError, match="--env-file"):
        load_settings({}, env_file=str(tmp_path / "nope.env"), cwd=tmp_path, home=tmp_path)


def test_non_loopback_needs_a_client_key_or_an_explicit_opt_out(tmp_path: Path) -> None:
    """HOST=0.0.0.0 without ANTHROPIC_API_KEY refuses to start unless insecure is asked."""
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        settings(tmp_path, {"HOST": "0.0.0.0"})
    assert settings(tmp_path, {"HOST": "0.0.0.0", "ANTHROPIC_API_KEY": "k"}).host == "0.0.0.0"
    assert settings(tmp_path, {"HOST": "0.0.0.0", "INSECURE_NO_AUTH": "true"}).insecure_no_auth
    assert settings(tmp_path, {"HOST": "::1"}).listens_on_loopback


def test_upstream_host_never_shows_the_key(tmp_path: Path) -> None:
    """upstream_host is host[:port] only."""
    s = settings(tmp_path, {"OPENAI_BASE_URL": "http://localhost:11434/v1", "OPENAI_API_KEY": "sk-x"})
    assert s.upstream_host == "localhost:11434"
    assert s.chat_completions_url == "http://localhost:11434/v1/chat/completions"


@pytest.mark.parametrize(
    ("requested", "upstream"),
    [
        ("claude-opus-5-5", "big"),
        ("claude-sonnet-4-5-20250929", "mid"),
        ("Claude-3-5-HAIKU-latest", "small"),
        ("openai/gpt-5", "openai/gpt-5"),
        ("deepseek-chat", "deepseek-chat"),
    ],
)
def test_routing_by_family_and_pass_through(requested: str, upstream: str) -> None:
    """Family names route to the configured models; other names pass unchanged."""
    assert Router("big", "mid", "small").resolve(requested) == upstream

"""The twistd entry point sets the collector up for a long-running daemon."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ccproxy.daemon import TWISTD
from ccproxy.service import GC_THRESHOLDS

_SCRIPT = """
import gc
import sys
if sys.argv[1] == "launcher":
    gc.disable()  # as ccproxy.daemon.TWISTD does
from ccproxy.tap import Options, makeService
options = Options()
options.parseOptions(["--port", "0"])
before = gc.get_freeze_count()
makeService(options)
print(gc.get_threshold(), before == 0 and gc.get_freeze_count() > 10_000, gc.isenabled())
"""


@pytest.mark.parametrize("started_by", ["twistd", "launcher"])
def test_make_service_freezes_start_up_objects_and_raises_thresholds(tmp_path: Path, started_by: str) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OPENAI_", "ANTHROPIC_"))}
    env.update(HOME=str(tmp_path), OPENAI_BASE_URL="http://127.0.0.1:9/v1")
    done = subprocess.run([sys.executable, "-c", _SCRIPT, started_by], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{GC_THRESHOLDS} True True"


def test_the_launcher_pauses_the_collector_before_twistd_imports_anything() -> None:
    assert TWISTD.index("gc.disable()") < TWISTD.index("twisted")


def test_a_failed_start_leaves_the_collector_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    import ccproxy.service
    from ccproxy import tap

    def broken(settings: object) -> None:
        raise RuntimeError("cannot build")

    monkeypatch.setattr(ccproxy.service, "makeService", broken)
    monkeypatch.setattr(ccproxy.service, "tune_garbage_collector", gc.enable)
    with pytest.raises(RuntimeError):
        tap.makeService({"settings": None})
    assert gc.isenabled()

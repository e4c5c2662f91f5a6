"""The twistd entry point sets the collector up for a long-running daemon."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ccproxy.service import GC_THRESHOLDS

_SCRIPT = """
import gc
from ccproxy.tap import Options, makeService
options = Options()
options.parseOptions(["--port", "0"])
before = gc.get_freeze_count()
makeService(options)
print(gc.get_threshold(), before == 0 and gc.get_freeze_count() > 10_000)
"""


def test_make_service_freezes_start_up_objects_and_raises_thresholds(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OPENAI_", "ANTHROPIC_"))}
    env.update(HOME=str(tmp_path), OPENAI_BASE_URL="http://127.0.0.1:9/v1")
    done = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{GC_THRESHOLDS} True"

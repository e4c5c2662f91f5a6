"""The soak (bench/soak.py) at a size that fits CI: mixed requests through one real daemon.

It runs C{python -m bench.soak} in a subprocess (the daemon, the fake upstream and the load
stay out of the test process) and asserts its checks: every answer as expected, RSS growth
after warm-up under 10 %, file descriptors back to the baseline, no upstream stream or
request left open for a cancelled client. The full size is
C{.venv/bin/python -m bench.soak} (20,000 requests); see bench/README.md.

C{CCPROXY_SOAK_REQUESTS} and C{CCPROXY_SOAK_CONCURRENCY} change the size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REQUESTS = int(os.environ.get("CCPROXY_SOAK_REQUESTS", "4000"))
CONCURRENCY = int(os.environ.get("CCPROXY_SOAK_CONCURRENCY", "16"))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_soak(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not (Path(sys.executable).parent / "twistd").exists():
        pytest.skip(f"no twistd beside {sys.executable} (run with .venv/bin/python)")
    out = tmp_path / "soak.json"
    command = [sys.executable, "-m", "bench.soak", "--requests", str(REQUESTS), "--concurrency", str(CONCURRENCY),
               "--json", str(out)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=280)
    assert out.exists(), f"the soak wrote no report (exit {done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}"
    report = json.loads(out.read_text())
    summary = report["summary"]
    with capsys.disabled():  # the figures show in every `make test` run, not only on failure
        print(f"\n[soak] {summary}")
    kinds = report["kinds"]
    assert sum(k["sent"] for k in kinds.values()) == REQUESTS, summary
    assert report["failed"] == [], summary + "\n" + "\n".join(report["failed"])
    # The same checks, spelled out (verdict() above already applied them).
    base, end = report["baseline"], report["end"]
    assert all(k["ok"] == k["sent"] for k in kinds.values()), summary
    assert end["rss_mb"] < base["rss_mb"] * 1.10, summary
    assert end["upstream"]["active_streams"] == 0, summary
    assert end["upstream"]["waiting_requests"] == 0, summary
    assert end["health"]["active"] == 0, summary
    assert done.returncode == 0, f"{summary}\n{done.stderr[-3000:]}"

"""How close and how fast ccproxy's token estimator is, against exact o200k_base.

C{python -m bench.tokens_accuracy [--repeat N]}

For every request body in tests/fixtures/tokens (plus the benchmark's own 49 KB Claude Code turn from
L{bench.requests}), prints the exact o200k_base count (bpe-openai), the estimate, the error, and the time each takes
for the whole request (walk + count). The "json/4" column is the naive rule (serialized body length / 4) for scale.
Then a summary per category, and what loading bpe-openai costs. Without bpe-openai installed, only the estimates
and their timings are printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ccproxy.tokens import TokenCounter

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "tokens"


def rss_kb() -> int:
    """This process's resident set size, from /proc (0 where there is none)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def best_time_us(call: Callable[[], object], repeat: int) -> float:
    """The best of C{repeat} timed calls, in microseconds (the least disturbed run)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best * 1e6


def samples() -> list[tuple[str, dict[str, Any]]]:
    """(name, body) for every corpus file and the benchmark request."""
    out = [(path.stem, json.loads(path.read_text(encoding="utf-8"))) for path in sorted(CORPUS.glob("*.json"))]
    try:
        from bench.requests import claude_code_request
    except ImportError:
        return out
    out.append(("bench__claude_code_request", claude_code_request("claude-sonnet-4-5", stream=True)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30, help="timed runs per sample; the best is shown")
    args = parser.parse_args()

    estimator = TokenCounter()
    before = rss_kb()
    start = time.perf_counter()
    exact = TokenCounter.load(exact=True)
    load_s = time.perf_counter() - start
    load_mb = (rss_kb() - before) / 1024
    has_exact = exact.exact

    header = f"{'sample':34s} {'KB':>5s} {'exact':>7s} {'estimate':>8s} {'error':>7s} {'json/4':>7s} {'est µs':>8s}"
    print(header + (f" {'exact µs':>9s}" if has_exact else ""))
    errors: dict[str, list[float]] = defaultdict(list)
    for name, body in samples():
        size = len(json.dumps(body, ensure_ascii=False).encode())
        estimate = estimator.count_request(body)
        est_us = best_time_us(lambda: estimator.count_request(body), args.repeat)
        if not has_exact:
            print(f"{name:34s} {size / 1024:5.1f} {'-':>7s} {estimate:8d} {'-':>7s} {'-':>7s} {est_us:8.0f}")
            continue
        expected = exact.count_request(body)
        exact_us = best_time_us(lambda: exact.count_request(body), max(3, args.repeat // 5))
        error = 100 * (estimate - expected) / expected
        naive = 100 * (size // 4 - expected) / expected
        errors[name.split("__")[0]].append(error)
        print(f"{name:34s} {size / 1024:5.1f} {expected:7d} {estimate:8d} {error:+6.1f}% {naive:+6.0f}% "
              f"{est_us:8.0f} {exact_us:9.0f}")

    if not has_exact:
        print("\nbpe-openai is not installed: no exact counts (pip install 'ccproxy[tokenizer]' or bpe-openai).")
        return 0
    print(f"\n{'category':12s} {'n':>3s} {'mean error':>11s} {'max |error|':>12s}")
    for category, values in sorted(errors.items()):
        mean = sum(values) / len(values)
        print(f"{category:12s} {len(values):3d} {mean:+10.1f}% {max(abs(v) for v in values):11.1f}%")
    every = [v for values in errors.values() for v in values]
    print(f"{'all':12s} {len(every):3d} {sum(every) / len(every):+10.1f}% {max(abs(v) for v in every):11.1f}%")
    print(f"\nloading bpe-openai o200k_base (import + tables): {load_s:.2f} s, +{load_mb:.0f} MB RSS")
    return 0


if __name__ == "__main__":
    sys.exit(main())

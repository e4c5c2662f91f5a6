"""Where the proxy's time goes: cProfile of ccproxy in-process, driven from a child process.

C{python -m bench.hotpath [--requests N] [--streams N] [--out DIR]}

ccproxy's site is built in this process with C{ccproxy.service.build_site} on the global
reactor and served on a free 127.0.0.1 port; C{bench.fake_upstream} runs as a child process,
and a second child (this module with C{--drive}) sends the load, so only the proxy's own work
is profiled. Two phases are profiled separately, after an unprofiled warm-up:

  - C{json}: sequential non-streaming requests with the 48 KB body (benchmark (a));
  - C{stream}: sequential 500-chunk streams with the 48 KB body (benchmark (b)).

For each phase it prints the top functions by own time and by cumulative time, and writes
C{<phase>.prof} (for C{pstats}/snakeviz) to C{--out}. cProfile roughly doubles the cost of
every Python call, so read the shares, not the absolute times. (py-spy is the non-intrusive
alternative; C{python -m bench.run --profile DIR} uses it where it can attach.)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.client import Connection
from bench.requests import ANTHROPIC_HEADERS, anthropic_body

__all__ = ["main"]

JSON_MODEL = "bench-chunks-10"
STREAM_MODEL = "bench-chunks-500"


async def _drive(port: int, model: str, stream: bool, count: int) -> None:
    body = anthropic_body(model, stream=stream)
    connection = Connection(port, 60)
    try:
        for _ in range(count):
            result = await connection.request("POST", "/v1/messages", body, ANTHROPIC_HEADERS)
            if not result.ok:
                raise SystemExit(f"request failed: {result.status} {result.error}")
    finally:
        connection.close()


def _report(stats: pstats.Stats, sort: str, top: int) -> str:
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats(sort).print_stats(top)
    lines = out.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    return "\n".join(lines[start:])


def main(argv: list[str] | None = None) -> int:
    """Profile the two phases; print the summaries."""
    parser = argparse.ArgumentParser(prog="python -m bench.hotpath", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="JSON requests to profile (default 300)")
    parser.add_argument("--streams", type=int, default=30, help="500-chunk streams to profile (default 30)")
    parser.add_argument("--top", type=int, default=30, help="functions to list per table")
    parser.add_argument("--out", type=Path, default=None, help="directory for the .prof files")
    parser.add_argument("--drive", nargs=4, metavar=("PORT", "MODEL", "STREAM", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.drive:
        port, model, stream, count = args.drive
        asyncio.run(_drive(int(port), model, stream == "1", int(count)))
        return 0

    from twisted.internet import reactor
    from twisted.internet.utils import getProcessOutputAndValue

    from bench.run import REPO, _stop, start_fake_upstream
    from ccproxy.config import Settings
    from ccproxy.service import build_site

    out = args.out or Path(tempfile.mkdtemp(prefix="ccproxy-hotpath-"))
    out.mkdir(parents=True, exist_ok=True)
    upstream_process, upstream_port = start_fake_upstream(out)
    summaries: list[str] = []
    failures: list[str] = []
    try:
        settings = Settings(openai_base_url=f"http://127.0.0.1:{upstream_port}/v1", port=0)
        site, upstream, _, _ = build_site(settings, reactor)
        upstream.start()
        listening = reactor.listenTCP(0, site, interface="127.0.0.1")  # type: ignore[attr-defined]
        port = listening.getHost().port
        phases = [
            ("warmup", JSON_MODEL, False, 30, False),
            ("warmup", STREAM_MODEL, True, 3, False),
            ("json", JSON_MODEL, False, args.requests, True),
            ("stream", STREAM_MODEL, True, args.streams, True),
        ]

        def run_phase(index: int) -> None:
            if index == len(phases):
                reactor.stop()  # type: ignore[attr-defined]
                return
            name, model, stream, count, profiled = phases[index]
            profiler = cProfile.Profile()
            started = time.perf_counter()
            command = ["-m", "bench.hotpath", "--drive", str(port), model, "1" if stream else "0", str(count)]
            done = getProcessOutputAndValue(sys.executable, command, path=str(REPO), reactor=reactor)
            if profiled:
                profiler.enable()

            def finished(result: Any) -> None:
                if profiled:
                    profiler.disable()
                _, err, code = result
                if code != 0:
                    failures.append(f"{name}: driver exited {code}: {err.decode(errors='replace')[-500:]}")
                elif profiled:
                    elapsed = time.perf_counter() - started
                    profiler.dump_stats(out / f"{name}.prof")
                    stats = pstats.Stats(profiler)
                    summaries.append(
                        f"\n=== {name}: {count} requests ({model}, 48 KB body) in {elapsed:.2f} s under cProfile ===\n"
                        f"--- by own time ---\n{_report(stats, 'tottime', args.top)}\n"
                        f"--- by cumulative time ---\n{_report(stats, 'cumulative', args.top)}"
                    )
                run_phase(index + 1)

            done.addCallback(finished)
            done.addErrback(lambda failure: (failures.append(str(failure)), reactor.stop()))  # type: ignore[attr-defined]

        reactor.callWhenRunning(run_phase, 0)  # type: ignore[attr-defined]
        reactor.callLater(600, reactor.stop)  # type: ignore[attr-defined]
        reactor.run()  # type: ignore[attr-defined]
    finally:
        _stop(upstream_process)
    print("\n".join(summaries))
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    print(f"\nprofiles in {out}", file=sys.stderr)
    return 1 if failures or not summaries else 0


if __name__ == "__main__":
    sys.exit(main())

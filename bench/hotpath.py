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
alternative: C{python -m bench.run --profile DIR} runs the real daemon under it.)

C{python -m bench.hotpath --imports} instead starts the real daemon three times with
C{PYTHONPROFILEIMPORTTIME=1} (and a private bytecode cache, primed by the first start) and
prints the imports that cost the most in the last start: where cold start goes.
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


def _imports(top: int, out: Path | None) -> int:
    """Start the daemon with import timing; print the costliest imports of a warm start."""
    import os
    import re

    from bench.run import (
        _free_port,
        _stop,
        spawn_proxy,
        start_fake_upstream,
        wait_healthy,
    )

    tmp = out or Path(tempfile.mkdtemp(prefix="ccproxy-imports-"))
    tmp.mkdir(parents=True, exist_ok=True)
    upstream_process, upstream_port = start_fake_upstream(tmp)
    log = tmp / "ccproxy-imports.log"
    try:
        for attempt in range(3):
            if log.exists():
                log.unlink()
            os.environ["PYTHONPROFILEIMPORTTIME"] = "1"  # inherited through proxy_environment
            port = _free_port()
            process = spawn_proxy(port, upstream_port, tmp, "ccproxy-imports")
            del os.environ["PYTHONPROFILEIMPORTTIME"]
            try:
                asyncio.run(wait_healthy(port, process, 30.0))
            finally:
                _stop(process)
    finally:
        _stop(upstream_process)
    rows = []
    for line in log.read_text(errors="replace").splitlines():
        found = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
        if found:
            own, total, indent, name = found.groups()
            rows.append((int(total), int(own), len(indent) // 2, name))
    everything = sum(total for total, _, depth, _ in rows if depth == 0)
    print(f"imports of a warm start (bytecode cached): {everything / 1e6:.3f} s in total, {len(rows)} modules")
    print(f"\n{'cumulative ms':>14} {'own ms':>8}  module (indent = import depth)")
    for total, own, depth, name in sorted(rows, reverse=True)[:top]:
        print(f"{total / 1000:14.1f} {own / 1000:8.1f}  {'  ' * depth}{name}")
    print(f"\nlog: {log}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Profile the two phases; print the summaries."""
    parser = argparse.ArgumentParser(prog="python -m bench.hotpath", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="JSON requests to profile (default 300)")
    parser.add_argument("--streams", type=int, default=30, help="500-chunk streams to profile (default 30)")
    parser.add_argument("--top", type=int, default=30, help="functions to list per table")
    parser.add_argument("--out", type=Path, default=None, help="directory for the .prof files")
    parser.add_argument("--imports", action="store_true", help="profile the daemon's imports instead")
    parser.add_argument("--drive", nargs=4, metavar=("PORT", "MODEL", "STREAM", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.drive:
        port, model, stream, count = args.drive
        asyncio.run(_drive(int(port), model, stream == "1", int(count)))
        return 0
    if args.imports:
        return _imports(args.top, args.out)

    from twisted.internet import reactor as global_reactor
    from twisted.internet.utils import getProcessOutputAndValue

    reactor: Any = global_reactor  # the interfaces it provides are not visible to mypy

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
        listening = reactor.listenTCP(0, site, interface="127.0.0.1")
        port = listening.getHost().port
        phases = [
            ("warmup", JSON_MODEL, False, 30, False),
            ("warmup", STREAM_MODEL, True, 3, False),
            ("json", JSON_MODEL, False, args.requests, True),
            ("stream", STREAM_MODEL, True, args.streams, True),
        ]

        def run_phase(index: int) -> None:
            if index == len(phases):
                reactor.stop()
                return
            name, model, stream, count, profiled = phases[index]
            profiler = cProfile.Profile()
            started = time.perf_counter()
            command = ["-m", "bench.hotpath", "--drive", str(port), model, "1" if stream else "0", str(count)]
            done = getProcessOutputAndValue(  # type: ignore[no-untyped-call]
                sys.executable, command, path=str(REPO), reactor=reactor
            )
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

            def broken(failure: Any) -> None:
                failures.append(str(failure))
                reactor.stop()

            done.addCallback(finished)
            done.addErrback(broken)

        reactor.callWhenRunning(run_phase, 0)
        reactor.callLater(600, reactor.stop)
        reactor.run()
    finally:
        _stop(upstream_process)
    print("\n".join(summaries))
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    print(f"\nprofiles in {out}", file=sys.stderr)
    return 1 if failures or not summaries else 0


if __name__ == "__main__":
    sys.exit(main())

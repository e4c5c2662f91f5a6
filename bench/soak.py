"""The soak: many mixed requests through one ccproxy process, then leak checks.

C{python -m bench.soak [--requests 20000] [--concurrency 32] [--json out.json]}

Starts C{bench/fake_upstream.py} and the real daemon (C{twistd -n --pidfile= ccproxy}, with
C{UPSTREAM_RETRIES=1} and C{RETRY_BACKOFF=0.01} so that failures are quick) and sends a
shuffled mix of C{/v1/messages} requests from C{--concurrency} keep-alive clients:

  - 40 % C{stream}: a small body, a 20-chunk SSE answer;
  - 25 % C{json}: a small body, C{stream: false}, a 20-chunk answer assembled by the proxy;
  - 15 % C{big}: the 48 KB Claude Code body, a 50-chunk SSE answer;
  - 10 % C{cancelled}: three in four are a slow upstream stream (one chunk every 20 ms for
    120 s) that the client closes as soon as the first C{content_block_delta} arrives (half
    of them with the 48 KB body); one in four is sent to an upstream that holds its answer
    back (C{bench-wait-600s}, streaming or not) and the client closes after 0.2 s, before
    any answer;
  - 10 % C{failing}: the upstream answers 500, 429 (C{retry-after: 0}) or 503, streaming or
    not; the client must get 500 C{api_error}, 429 C{rate_limit_error} or 529
    C{overloaded_error} (after one retry for the 429 and the 503).

Every answer is checked: a stream must be valid SSE from C{message_start} to C{message_stop}
with the expected text and C{end_turn}; a JSON answer must be the expected message; an error
must have the expected status and Anthropic error type.

The first 10 % of the requests are a warm-up. Then the clients stop, close their connections,
and once the upstream side is quiet the baseline is read: the daemon's RSS, its open file
descriptors (split into pooled upstream connections and the rest, from C{/proc/<pid>/net/tcp})
and the fake upstream's counters (C{GET /bench/stats}). After the rest of the requests the same
is read again, after a settle of up to C{--settle} seconds. The run fails (exit status 1) when:

  - any answer was not what it should be;
  - RSS grew by 10 % or more over the baseline;
  - the daemon holds more file descriptors than at the baseline, beyond a tolerance of
    L{FD_TOLERANCE}, not counting its upstream connections (the pool keeps idle ones), or
    more upstream connections than the pool may keep idle (C{ccproxy.upstream.MAX_IDLE_PER_HOST});
  - a socket of the daemon is left in CLOSE_WAIT;
  - an upstream stream is still active (a cancelled client's stream was not closed), or fewer
    upstream streams were cut short than clients cancelled mid-stream;
  - an upstream request is still waiting for its answer on an open connection (a client
    that cancelled before the answer left the upstream call running);
  - the fake upstream still has more connections open than the pool may keep idle;
  - the daemon's C{/health} counters disagree (active requests left, wrong counts);
  - the daemon's log holds a traceback.

It prints one summary line (and the checks), and writes everything as JSON with C{--json}.
C{tests/soak/test_soak.py} runs it at a smaller size in C{make test}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.client import (
    Connection,
    Result,
    cpu_ms_between,
    cpu_ticks,
    fetch,
    open_fds,
    percentile,
    rss_bytes,
)
from bench.fake_upstream import _WORDS
from bench.requests import ANTHROPIC_HEADERS, anthropic_body
from bench.run import (
    REPO,
    _free_port,
    _raise_fd_limit,
    _stop,
    spawn_proxy,
    start_fake_upstream,
    wait_healthy,
)

__all__ = ["Soak", "run_soak", "summary_line", "main", "MIX", "RSS_GROWTH_LIMIT", "FD_TOLERANCE"]

PATH = "/v1/messages"
RSS_GROWTH_LIMIT = 0.10  # RSS after the run may exceed the post-warm-up baseline by less than this
FD_TOLERANCE = 3  # file descriptors (other than pooled upstream connections) above the baseline
REQUEST_TIMEOUT = 60.0
PROXY_ENV = {"UPSTREAM_RETRIES": "1", "RETRY_BACKOFF": "0.01", "RETRY_MAX_WAIT": "1"}

STREAM_CHUNKS, JSON_CHUNKS, BIG_CHUNKS = 20, 20, 50
CANCEL_MODEL = "bench-slow-120s-every-20ms"  # cancelled after the first content event
WAIT_MODEL = "bench-wait-600s"  # cancelled before the upstream answers
EARLY_CANCEL_AFTER = 0.2  # seconds


def early(index: int, enabled: bool = True) -> bool:
    """Whether the C{index}th cancelled request is cancelled before the upstream answers."""
    return enabled and index % 4 == 3
FAILURES = ((500, 500, "api_error"), (429, 429, "rate_limit_error"), (503, 529, "overloaded_error"))

# kind -> share of the requests (the rest of the rounding goes to "stream")
MIX = {"stream": 0.40, "json": 0.25, "big": 0.15, "cancelled": 0.10, "failing": 0.10}


# -- one request of each kind ------------------------------------------------------------------


def expected_text(chunks: int) -> str:
    """The text the fake upstream streams for C{chunks} content chunks."""
    return "".join(_WORDS[i % len(_WORDS)] for i in range(chunks))


def check_stream(result: Result, chunks: int) -> str | None:
    """Why C{result} is not a whole, valid Anthropic stream of the expected text (or C{None})."""
    if result.error is not None or result.status != 200:
        return f"status {result.status} {result.error or ''} {result.body[:200]!r}"
    names: list[str] = []
    text: list[str] = []
    stop_reason = None
    for block in result.body.split(b"\n\n"):
        if not block.strip():
            continue
        name, data = "", b""
        for line in block.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                data = line[5:].strip()
        if name == "ping":
            continue
        try:
            payload = json.loads(data)
        except ValueError:
            return f"event {name!r} has invalid JSON data {data[:200]!r}"
        if payload.get("type") != name:
            return f"event {name!r} carries type {payload.get('type')!r}"
        names.append(name)
        if name == "content_block_delta" and payload["delta"].get("type") == "text_delta":
            text.append(payload["delta"]["text"])
        elif name == "message_delta":
            stop_reason = payload["delta"].get("stop_reason")
        elif name == "error":
            return f"error event: {data[:300]!r}"
    if not names or names[0] != "message_start" or names[-1] != "message_stop":
        return f"stream runs {names[:2]} ... {names[-2:]}"
    if "".join(text) != expected_text(chunks):
        return f"stream text {''.join(text)[:80]!r} is not the expected {chunks}-chunk text"
    if stop_reason != "end_turn":
        return f"stop_reason {stop_reason!r}"
    return None


def check_message(result: Result, chunks: int) -> str | None:
    """Why C{result} is not the expected non-streaming message (or C{None})."""
    if result.error is not None or result.status != 200:
        return f"status {result.status} {result.error or ''} {result.body[:200]!r}"
    try:
        message = json.loads(result.body)
    except ValueError:
        return f"invalid JSON {result.body[:200]!r}"
    if message.get("type") != "message" or message.get("stop_reason") != "end_turn":
        return f"not a finished message: {result.body[:200]!r}"
    text = "".join(block.get("text", "") for block in message.get("content", []) if block.get("type") == "text")
    if text != expected_text(chunks):
        return f"message text {text[:80]!r} is not the expected {chunks}-chunk text"
    return None


def check_error(result: Result, status: int, kind: str) -> str | None:
    """Why C{result} is not the Anthropic error C{status}/C{kind} (or C{None})."""
    if result.error is not None or result.ended is None:
        return f"no whole answer: {result.error}"
    if result.status != status:
        return f"status {result.status}, expected {status}: {result.body[:200]!r}"
    try:
        payload = json.loads(result.body)
    except ValueError:
        return f"invalid JSON error body {result.body[:200]!r}"
    if payload.get("type") != "error" or payload.get("error", {}).get("type") != kind:
        return f"error body {result.body[:200]!r}, expected type {kind}"
    return None


async def cancel_mid_stream(port: int, body: bytes, timeout: float,
                            after: float | None = None) -> tuple[str | None, float]:
    """Send a streaming request and close the connection after the first content event, or
    (with C{after}) after that many seconds, during which nothing may arrive.

    Returns (what went wrong or C{None}, seconds until the connection was closed).
    """
    started = time.perf_counter()
    writer: asyncio.StreamWriter | None = None
    try:
        reader, opened = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, limit=1 << 20), timeout)
        writer = opened
        head = [f"POST {PATH} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(body)}"]
        head += [f"{name}: {value}" for name, value in ANTHROPIC_HEADERS.items()]
        opened.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)

        async def until_content() -> str | None:
            seen = bytearray()
            while b"event: content_block_delta" not in seen:
                data = await reader.read(65536)
                if not data:
                    return f"connection closed before the first content event: {bytes(seen[:200])!r}"
                seen += data
            if not seen.startswith(b"HTTP/1.1 200 "):
                return f"status line {bytes(seen[:40])!r}"
            return None

        if after is None:
            problem = await asyncio.wait_for(until_content(), timeout)
        else:
            try:
                data = await asyncio.wait_for(reader.read(65536), after)
                problem = f"answered before the upstream did: {data[:200]!r}"
            except asyncio.TimeoutError:
                problem = None
        return problem, time.perf_counter() - started
    except (OSError, asyncio.TimeoutError) as error:
        return f"{type(error).__name__}: {error}", time.perf_counter() - started
    finally:
        if writer is not None:
            writer.close()  # the client goes away mid-stream, as Claude Code does on Esc


# -- /proc probes --------------------------------------------------------------------------------


def _tcp_table(pid: int) -> dict[int, tuple[int, int, str]]:
    """Socket inode -> (local port, remote port, state in hex) in C{pid}'s network namespace."""
    table: dict[int, tuple[int, int, str]] = {}
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{name}") as handle:
                lines = handle.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
            table[inode] = (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16), state)
    return table


def descriptors(pid: int, proxy_port: int, upstream_port: int) -> dict[str, int]:
    """C{pid}'s open file descriptors by kind: upstream connections, client connections, the rest."""
    table = _tcp_table(pid)
    counts = Counter({"total": 0, "upstream": 0, "clients": 0, "close_wait": 0})
    for fd in os.listdir(f"/proc/{pid}/fd"):
        counts["total"] += 1
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if not target.startswith("socket:["):
            continue
        found = table.get(int(target[8:-1]))
        if found is None:
            continue
        local, remote, state = found
        if state == "08":
            counts["close_wait"] += 1
        if remote == upstream_port:
            counts["upstream"] += 1
        elif local == proxy_port and state != "0A":
            counts["clients"] += 1
    counts["other"] = counts["total"] - counts["upstream"]
    return dict(counts)


def _mb(size: int) -> float:
    return size / (1024 * 1024)


# -- the run -----------------------------------------------------------------------------------


@dataclass
class Tally:
    """What happened to the requests of one kind."""

    sent: int = 0
    ok: int = 0
    seconds: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "ok": self.ok,
            "failed": self.sent - self.ok,
            "p50_ms": round(percentile(self.seconds, 0.5) * 1000, 2) if self.seconds else None,
            "p99_ms": round(percentile(self.seconds, 0.99) * 1000, 2) if self.seconds else None,
            "problem_examples": self.problems[:5],
        }


def schedule(requests: int, seed: int) -> list[tuple[str, int]]:
    """The shuffled plan: (kind, index within its kind) for every request."""
    counts = {kind: int(share * requests) for kind, share in MIX.items()}
    counts["stream"] += requests - sum(counts.values())
    plan = [(kind, index) for kind, count in counts.items() for index in range(count)]
    random.Random(seed).shuffle(plan)
    return plan


class Soak:
    """One soak: the two processes, the plan, the samples and the verdict."""

    def __init__(self, tmp: Path, requests: int, concurrency: int, seed: int, warmup: float, settle: float,
                 early_cancel: bool = True) -> None:
        self.tmp = tmp
        self.early_cancel = early_cancel
        self.plan = schedule(requests, seed)
        self.concurrency = concurrency
        self.warmup = max(concurrency, int(requests * warmup))
        self.settle = settle
        self.tallies = {kind: Tally() for kind in MIX}
        self.upstream: subprocess.Popen[bytes] | None = None
        self.proxy: subprocess.Popen[bytes] | None = None
        self.upstream_port = self.proxy_port = 0
        self.rss_samples: list[tuple[int, float]] = []  # (requests done, MB) every 0.5 s
        self.done = 0
        self._bodies: dict[tuple[str, bool, bool], bytes] = {}
        self.report: dict[str, Any] = {
            "requests": len(self.plan), "concurrency": concurrency, "seed": seed, "warmup_requests": self.warmup,
            "proxy_env": PROXY_ENV,
            "cancelled_early": sum(1 for kind, index in self.plan if kind == "cancelled" and early(index, early_cancel)),
        }

    def body(self, model: str, *, stream: bool, small: bool) -> bytes:
        key = (model, stream, small)
        if key not in self._bodies:
            self._bodies[key] = anthropic_body(model, stream=stream, small=small)
        return self._bodies[key]

    @property
    def pid(self) -> int:
        assert self.proxy is not None
        return self.proxy.pid

    async def start(self) -> None:
        self.upstream, self.upstream_port = start_fake_upstream(self.tmp)
        self.proxy_port = _free_port()
        self.proxy = spawn_proxy(self.proxy_port, self.upstream_port, self.tmp, "ccproxy", extra_env=PROXY_ENV)
        await wait_healthy(self.proxy_port, self.proxy, 60.0)

    def stop(self) -> None:
        _stop(self.proxy)
        _stop(self.upstream)

    # requests

    async def one(self, connection: Connection, kind: str, index: int) -> tuple[str | None, float]:
        """Send one request of C{kind}; return (what was wrong or C{None}, seconds)."""
        port = self.proxy_port
        if kind == "cancelled" and early(index, self.early_cancel):
            body = self.body(WAIT_MODEL, stream=(index // 4) % 2 == 0, small=True)
            return await cancel_mid_stream(port, body, REQUEST_TIMEOUT, after=EARLY_CANCEL_AFTER)
        if kind == "cancelled":
            body = self.body(CANCEL_MODEL, stream=True, small=index % 2 == 1)
            return await cancel_mid_stream(port, body, REQUEST_TIMEOUT)
        if kind == "failing":
            upstream_status, status, error_type = FAILURES[index % len(FAILURES)]
            stream = (index // len(FAILURES)) % 2 == 0
            body = self.body(f"bench-status-{upstream_status}", stream=stream, small=True)
            result = await connection.request("POST", PATH, body, ANTHROPIC_HEADERS, keep_body=True)
            problem = check_error(result, status, error_type)
            if problem is not None:
                problem = f"upstream {upstream_status} (stream={stream}): {problem}"
        elif kind == "json":
            body = self.body(f"bench-chunks-{JSON_CHUNKS}", stream=False, small=True)
            result = await connection.request("POST", PATH, body, ANTHROPIC_HEADERS, keep_body=True)
            problem = check_message(result, JSON_CHUNKS)
        else:
            chunks, small = (STREAM_CHUNKS, True) if kind == "stream" else (BIG_CHUNKS, False)
            body = self.body(f"bench-chunks-{chunks}", stream=True, small=small)
            result = await connection.request("POST", PATH, body, ANTHROPIC_HEADERS, keep_body=True)
            problem = check_stream(result, chunks)
        seconds = result.elapsed if result.ended is not None else time.perf_counter() - result.started
        return problem, seconds

    async def phase(self, start: int, stop: int) -> None:
        """Send C{plan[start:stop]} from C{concurrency} keep-alive clients; close them after."""
        position = start

        async def client() -> None:
            nonlocal position
            connection = Connection(self.proxy_port, REQUEST_TIMEOUT)
            try:
                while position < stop:
                    kind, index = self.plan[position]
                    position += 1
                    tally = self.tallies[kind]
                    tally.sent += 1
                    problem, seconds = await self.one(connection, kind, index)
                    tally.seconds.append(seconds)
                    if problem is None:
                        tally.ok += 1
                    else:
                        tally.problems.append(problem)
                    self.done += 1
            finally:
                connection.close()

        await asyncio.gather(*(client() for _ in range(self.concurrency)))

    async def sample_rss(self) -> None:
        while True:
            self.rss_samples.append((self.done, round(_mb(rss_bytes(self.pid)), 2)))
            await asyncio.sleep(0.5)

    # probes

    async def json_from(self, port: int, path: str) -> dict[str, Any]:
        result = await fetch(port, "GET", path, keep_body=True, timeout=10.0)
        if result.status != 200:
            raise RuntimeError(f"GET {path} on port {port}: {result.status} {result.error}")
        value: dict[str, Any] = json.loads(result.body)
        return value

    async def quiet(self) -> dict[str, Any]:
        """Wait (up to C{settle} s) until no upstream stream and no proxy request is active,
        then read every figure. The RSS and fds are read last, after the probes' own
        connections have been closed and noticed."""
        started = time.perf_counter()
        while True:
            upstream = await self.json_from(self.upstream_port, "/bench/stats")
            health = await self.json_from(self.proxy_port, "/health")
            waited = time.perf_counter() - started
            idle = upstream["active_streams"] == 0 and upstream["waiting_requests"] == 0 and health["active"] == 0
            if idle or waited >= self.settle:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # let the last closes land before counting descriptors
        pid = self.pid
        return {
            "settled_s": round(waited, 2),
            "rss_mb": round(_mb(rss_bytes(pid)), 2),
            "fds": descriptors(pid, self.proxy_port, self.upstream_port),
            "upstream": upstream,
            "health": {k: health[k] for k in ("requests", "errors", "cancelled", "active")},
            "cpu_ticks": cpu_ticks(pid),
        }

    async def run(self) -> None:
        await self.start()
        pid = self.pid
        self.report["start"] = {"rss_mb": round(_mb(rss_bytes(pid)), 2), "fds": open_fds(pid)}
        sampler = asyncio.ensure_future(self.sample_rss())
        try:
            started = time.perf_counter()
            await self.phase(0, self.warmup)
            warmed = time.perf_counter()
            self.report["baseline"] = await self.quiet()
            resumed = time.perf_counter()
            await self.phase(self.warmup, len(self.plan))
            ended = time.perf_counter()
            self.report["end"] = await self.quiet()
        finally:
            sampler.cancel()
        self.report["load_seconds"] = round((warmed - started) + (ended - resumed), 2)
        self.report["wall_seconds"] = round(time.perf_counter() - started, 2)
        cpu_ms = cpu_ms_between(self.report["baseline"]["cpu_ticks"], self.report["end"]["cpu_ticks"])
        self.report["proxy_cpu_ms_per_request"] = round(cpu_ms / max(1, len(self.plan) - self.warmup), 3)
        self.report["peak_rss_mb"] = max((mb for _, mb in self.rss_samples), default=None)
        self.report["rss_samples"] = self.rss_samples

    def log_problems(self) -> list[str]:
        problems = []
        for log in sorted(self.tmp.glob("*.log")):
            text = log.read_text(errors="replace")
            for marker in ("Traceback", "Unhandled", "CRITICAL"):
                if marker in text:
                    problems.append(f"{log.name}: {text.count(marker)} x {marker!r}")
        return problems


def verdict(report: dict[str, Any]) -> list[str]:
    """The failed checks of a finished soak (empty when all passed)."""
    from ccproxy.upstream import MAX_IDLE_PER_HOST

    failed: list[str] = []
    kinds = report["kinds"]
    for kind, tally in kinds.items():
        if tally["failed"]:
            failed.append(f"{tally['failed']} unexpected {kind} answers, e.g. {tally['problem_examples'][:2]}")
    base, end = report["baseline"], report["end"]
    growth = (end["rss_mb"] - base["rss_mb"]) / base["rss_mb"]
    if growth >= RSS_GROWTH_LIMIT:
        failed.append(f"RSS grew {growth * 100:.1f} % after warm-up ({base['rss_mb']} -> {end['rss_mb']} MB), "
                      f"limit {RSS_GROWTH_LIMIT * 100:g} %")
    if end["fds"]["other"] > base["fds"]["other"] + FD_TOLERANCE:
        failed.append(f"file descriptors other than upstream connections: {base['fds']['other']} -> "
                      f"{end['fds']['other']} (tolerance {FD_TOLERANCE})")
    if end["fds"]["upstream"] > MAX_IDLE_PER_HOST:
        failed.append(f"{end['fds']['upstream']} upstream connections open at the end; the pool keeps at most "
                      f"{MAX_IDLE_PER_HOST} idle")
    if end["fds"]["close_wait"]:
        failed.append(f"{end['fds']['close_wait']} of the daemon's sockets are in CLOSE_WAIT")
    upstream = end["upstream"]
    if upstream["active_streams"]:
        failed.append(f"{upstream['active_streams']} upstream streams still active {end['settled_s']} s after the load")
    if upstream["waiting_requests"]:
        failed.append(f"{upstream['waiting_requests']} upstream requests still wait for their answer on an open "
                      f"connection {end['settled_s']} s after the load, although their clients cancelled "
                      f"({report['cancelled_early']} cancelled before the upstream answered)")
    mid_stream = kinds["cancelled"]["sent"] - report["cancelled_early"]
    if upstream["streams_lost"] < mid_stream:
        failed.append(f"{mid_stream} clients cancelled mid-stream, but only {upstream['streams_lost']} upstream "
                      "streams were cut short")
    if upstream["open_connections"] > MAX_IDLE_PER_HOST:
        failed.append(f"the fake upstream still has {upstream['open_connections']} connections open "
                      f"(pool limit {MAX_IDLE_PER_HOST})")
    health = end["health"]
    total = report["requests"]
    expected = {"active": 0, "requests": total, "cancelled": kinds["cancelled"]["sent"],
                "errors": kinds["failing"]["sent"]}
    wrong = {k: (health[k], v) for k, v in expected.items() if health[k] != v}
    if wrong:
        failed.append(f"/health counters (got, expected): {wrong}")
    if report["log_problems"]:
        failed.append(f"daemon log: {report['log_problems']}")
    return failed


def summary_line(report: dict[str, Any]) -> str:
    """The one-line summary of a soak report."""
    kinds = report["kinds"]
    mix = ", ".join(f"{kinds[k]['sent']} {k}" for k in MIX)
    mix = mix.replace(" cancelled", f" cancelled ({report['cancelled_early']} before the answer)")
    base, end = report["baseline"], report["end"]
    growth = (end["rss_mb"] - base["rss_mb"]) * 100 / base["rss_mb"]
    return (
        f"soak: {report['requests']} requests ({mix}) at concurrency {report['concurrency']} in "
        f"{report['load_seconds']:.1f} s; RSS {base['rss_mb']:.1f} -> {end['rss_mb']:.1f} MB ({growth:+.1f} %, "
        f"peak {report['peak_rss_mb']:.1f}); fds {base['fds']['total']} -> {end['fds']['total']} "
        f"(upstream connections {base['fds']['upstream']} -> {end['fds']['upstream']}); "
        f"upstream active streams {end['upstream']['active_streams']}, "
        f"waiting requests {end['upstream']['waiting_requests']}, "
        f"open connections {end['upstream']['open_connections']}, "
        f"streams cut {end['upstream']['streams_lost']}; proxy CPU {report['proxy_cpu_ms_per_request']:.2f} ms/request"
    )


def run_soak(requests: int = 20000, concurrency: int = 32, *, seed: int = 1, warmup: float = 0.1,
             settle: float = 5.0, keep_logs: Path | None = None, early_cancel: bool = True) -> dict[str, Any]:
    """Run one soak; return its report (with C{failed}: the failed checks, and C{summary})."""
    os.chdir(REPO)
    _raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="ccproxy-soak-") as name:
        tmp = Path(name)
        soak = Soak(tmp, requests, concurrency, seed, warmup, settle, early_cancel)
        try:
            asyncio.run(soak.run())
        finally:
            soak.stop()
        report = soak.report
        report["kinds"] = {kind: tally.as_json() for kind, tally in soak.tallies.items()}
        report["log_problems"] = soak.log_problems()
        failed = verdict(report)
        if keep_logs is not None or failed:
            keep = keep_logs or Path(tempfile.mkdtemp(prefix="ccproxy-soak-logs-"))
            keep.mkdir(parents=True, exist_ok=True)
            for log in tmp.glob("*.log"):
                (keep / log.name).write_bytes(log.read_bytes())
            report["logs"] = str(keep)
    report["failed"] = failed
    report["summary"] = summary_line(report)
    return report


def main(argv: list[str] | None = None) -> int:
    """Run the soak, print the summary and the checks; exit 1 if a check failed."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000, help="how many requests in all (default 20000)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent keep-alive clients (default 32)")
    parser.add_argument("--seed", type=int, default=1, help="the shuffle of the mix (default 1)")
    parser.add_argument("--warmup", type=float, default=0.1, help="share of the requests before the baseline")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to wait for the upstream side to go quiet")
    parser.add_argument("--no-early-cancel", action="store_true",
                        help="cancel every cancelled request mid-stream (none before the upstream answers)")
    parser.add_argument("--json", type=Path, default=None, help="write the whole report here")
    parser.add_argument("--keep-logs", type=Path, default=None, help="copy the daemon's log here")
    args = parser.parse_args(argv)
    if args.requests < 10 * len(MIX) or args.concurrency < 1:
        parser.error("use at least 50 requests and one client")
    print(f"soak: {args.requests} requests, concurrency {args.concurrency} ...", file=sys.stderr, flush=True)
    report = run_soak(args.requests, args.concurrency, seed=args.seed, warmup=args.warmup, settle=args.settle,
                      keep_logs=args.keep_logs, early_cancel=not args.no_early_cancel)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(report["summary"])
    for kind, tally in report["kinds"].items():
        print(f"  {kind:9} {tally['ok']:6}/{tally['sent']:<6} ok   p50 {tally['p50_ms']} ms   p99 {tally['p99_ms']} ms")
    if report.get("logs"):
        print(f"  daemon log kept in {report['logs']}")
    for problem in report["failed"]:
        print(f"FAILED: {problem}")
    if not report["failed"]:
        print("soak: all checks passed")
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())

"""The benchmark's load side: a small asyncio HTTP/1.1 client, process probes and wrk.

The client is deliberately minimal (keep-alive, Content-Length or chunked bodies, timestamps
for the first body bytes, the first content event and the end), and both columns use the same
code, so its own cost cancels out of every "added" number.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

__all__ = [
    "Result",
    "Connection",
    "fetch",
    "cpu_ms_between",
    "cpu_ticks",
    "rss_bytes",
    "open_fds",
    "percentile",
    "wrk_available",
    "run_wrk",
    "run_python_load",
]

_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    """One response: status, sizes and C{time.perf_counter()} stamps (C{None} if never seen)."""

    status: int = 0
    size: int = 0
    started: float = 0.0
    headers_at: float | None = None
    first_at: float | None = None  # first non-empty body bytes (the first event of a stream)
    marker_at: float | None = None  # first body bytes containing the marker (first content)
    ended: float | None = None  # the whole body has arrived (the last event)
    body: bytes = b""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status == 200 and self.ended is not None

    @property
    def end(self) -> float:
        """When the body ended (only for a finished response)."""
        assert self.ended is not None
        return self.ended

    @property
    def elapsed(self) -> float:
        """Seconds from sending the request to the end of the response body."""
        return self.end - self.started

    def since_start(self, stamp: float | None) -> float:
        """Seconds from sending the request to C{stamp} (which must have been seen)."""
        assert stamp is not None
        return stamp - self.started


class Connection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:C{port}."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.port = port
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", self.port, limit=1 << 20), self.timeout
        )

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        marker: bytes | None = None,
        keep_body: bool = False,
        result: Result | None = None,
        on_first: Callable[[], None] | None = None,
    ) -> Result:
        """Send one request and read the whole response, within C{timeout} seconds.

        @param result: fill this object (so a caller can watch a long stream as it goes).
        @param on_first: called once when the first body bytes arrive.
        """
        if result is None:
            result = Result()
        result.started = time.perf_counter()
        try:
            await asyncio.wait_for(
                self._exchange(method, path, body, headers or {}, marker, keep_body, result, on_first), self.timeout
            )
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as error:
            result.error = f"{type(error).__name__}: {error}"
            self.close()
        return result

    async def _exchange(
        self,
        method: str,
        path: str,
        body: bytes,
        headers: dict[str, str],
        marker: bytes | None,
        keep_body: bool,
        result: Result,
        on_first: Callable[[], None] | None,
    ) -> None:
        if self._writer is None:
            await self._open()
        reader, writer = self._reader, self._writer
        assert reader is not None and writer is not None
        head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}", f"Content-Length: {len(body)}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        raw = await reader.readuntil(b"\r\n\r\n")
        result.headers_at = time.perf_counter()
        lines = raw.decode("latin-1").split("\r\n")
        result.status = int(lines[0].split(" ", 2)[1])
        response_headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            response_headers[name.strip().lower()] = value.strip().lower()
        parts: list[bytes] = []

        def got(data: bytes) -> None:
            if not data:
                return
            now = time.perf_counter()
            if result.first_at is None:
                result.first_at = now
                if on_first is not None:
                    on_first()
            if marker is not None and result.marker_at is None and marker in data:
                result.marker_at = now
            result.size += len(data)
            if keep_body:
                parts.append(data)

        if response_headers.get("transfer-encoding") == "chunked":
            while True:
                size = int((await reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await reader.readline()  # no trailers are sent by either side
                    break
                got((await reader.readexactly(size + 2))[:-2])
        elif "content-length" in response_headers:
            got(await reader.readexactly(int(response_headers["content-length"])))
        else:
            got(await reader.read())
            self.close()
        result.ended = time.perf_counter()
        result.body = b"".join(parts)
        if response_headers.get("connection") == "close":
            self.close()


async def fetch(port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
                *, timeout: float = 30.0, **options: Any) -> Result:
    """One request on a fresh connection, closed afterwards."""
    connection = Connection(port, timeout)
    try:
        return await connection.request(method, path, body, headers, **options)
    finally:
        connection.close()


# -- process probes --------------------------------------------------------------------------


def cpu_ticks(pid: int) -> int:
    """User plus system CPU time of process C{pid} (all its threads) in clock ticks, from
    /proc/<pid>/stat. Whole ticks, so that a difference is exact: as floats, 40 ticks (400 ms) over
    40 streams once came to 10.000000000000009 ms and missed a 10 ms target."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def cpu_ms_between(before: int, after: int) -> float:
    """The milliseconds between two L{cpu_ticks} readings."""
    return (after - before) * 1000 / _CLK_TCK


def rss_bytes(pid: int, key: str = "VmRSS") -> int:
    """A memory figure of process C{pid} from /proc/<pid>/status (C{VmRSS} or C{VmHWM})."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise ValueError(f"{key} not in /proc/{pid}/status")


def open_fds(pid: int) -> int:
    """How many file descriptors process C{pid} holds."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def percentile(values: list[float], fraction: float) -> float:
    """The C{fraction} quantile of C{values} (nearest rank)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


# -- throughput load generators ----------------------------------------------------------------


def wrk_available() -> str | None:
    """The path of C{wrk}, if it is installed."""
    return shutil.which("wrk")


_WRK_SCRIPT = """\
local f = assert(io.open({path}, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
{headers}
"""


def _wrk_seconds(text: str) -> float:
    found = re.match(r"([\d.]+)(us|ms|s|m)", text)
    if found is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    number, unit = found.groups()
    return float(number) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def run_wrk(port: int, path: str, body_file: Path, headers: dict[str, str], *, connections: int,
            threads: int, seconds: float, timeout: float) -> dict[str, Any]:
    """Run wrk against 127.0.0.1:C{port}C{path}; return requests/s, latencies and errors."""
    script = body_file.with_suffix(".lua")
    # JSON string literals are valid Lua string literals for ASCII text.
    lines = "\n".join(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}" for name, value in headers.items())
    script.write_text(_WRK_SCRIPT.format(path=json.dumps(str(body_file)), headers=lines))
    command = [
        wrk_available() or "wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
        "--latency", "-s", str(script), f"http://127.0.0.1:{port}{path}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    out = done.stdout
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    found: dict[str, Any] = {"tool": "wrk", "output": out}
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    found["rps"] = float(match.group(1)) if match else 0.0
    match = re.search(r"(\d+) requests in", out)
    found["requests"] = int(match.group(1)) if match else 0
    match = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    found["errors"] = int(match.group(1)) if match else 0
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if match:
        found["errors"] += sum(int(n) for n in match.groups())
    for label, key in (("50%", "p50"), ("99%", "p99")):
        match = re.search(rf"^\s+{label}\s+(\S+)", out, re.MULTILINE)
        found[key] = _wrk_seconds(match.group(1)) if match else None
    return found


async def _load_worker(port: int, path: str, body: bytes, headers: dict[str, str], connections: int,
                       seconds: float) -> tuple[int, int, list[float]]:
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    errors = 0

    async def one() -> None:
        nonlocal errors
        connection = Connection(port, 30.0)
        try:
            while time.perf_counter() < deadline:
                result = await connection.request("POST", path, body, headers)
                if result.ok:
                    latencies.append(result.elapsed)
                else:
                    errors += 1
        finally:
            connection.close()

    await asyncio.gather(*(one() for _ in range(connections)))
    return len(latencies), errors, latencies


def run_python_load(port: int, path: str, body_file: Path, headers: dict[str, str], *, connections: int,
                    processes: int, seconds: float, timeout: float) -> dict[str, Any]:
    """The fallback load generator: C{processes} processes sharing C{connections} keep-alive connections."""
    per = [connections // processes + (1 if i < connections % processes else 0) for i in range(processes)]
    command = [sys.executable, "-m", "bench.client", str(port), path, str(body_file), json.dumps(headers)]
    started = time.perf_counter()
    children = [
        subprocess.Popen(command + [str(n), str(seconds)], stdout=subprocess.PIPE, cwd=Path(__file__).parent.parent)
        for n in per
    ]
    done, errors, latencies = 0, 0, list[float]()
    try:
        for child in children:
            out, _ = child.communicate(timeout=timeout)
            report = json.loads(out)
            done += report["done"]
            errors += report["errors"]
            latencies += report["latencies"]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    elapsed = max(seconds, time.perf_counter() - started - 0.3)  # minus interpreter start-up, roughly
    return {
        "tool": f"python ({processes} processes)",
        "rps": done / seconds if seconds else 0.0,
        "requests": done,
        "errors": errors,
        "p50": percentile(latencies, 0.5),
        "p99": percentile(latencies, 0.99),
        "elapsed": elapsed,
    }


if __name__ == "__main__":
    _port, _path, _body, _headers, _connections, _seconds = sys.argv[1:7]
    _done, _errors, _latencies = asyncio.run(
        _load_worker(int(_port), _path, Path(_body).read_bytes(), json.loads(_headers), int(_connections), float(_seconds))
    )
    print(json.dumps({"done": _done, "errors": _errors, "latencies": _latencies}))

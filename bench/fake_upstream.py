"""A fast fake OpenAI-compatible upstream for the benchmark (127.0.0.1 only).

Run as C{python -m bench.fake_upstream --port 0}; it prints C{READY <port>} on stdout once it
listens. It is a bare asyncio protocol (no framework, no JSON parsing of the request), so it
costs far less per request than the proxy it measures.

C{POST /v1/chat/completions} is answered according to the request's C{model}:

  - C{bench-chunks-N}: N content chunks, written at once;
  - C{bench-chunks-N-every-Dms}: N content chunks, one every D ms;
  - C{bench-slow-Ss}: a stream lasting S seconds, one chunk every 50 ms;
  - C{bench-slow-Ss-every-Dms}: a stream lasting S seconds, one chunk every D ms;
  - C{bench-wait-Ss}: nothing at all for S seconds (no status line), then 10 chunks at once;
  - C{bench-status-NNN}: HTTP status NNN with an OpenAI error JSON body (a 429 also carries
    C{retry-after: 0}), streaming or not; the connection stays open;
  - any other model: 10 chunks at once.

The headers C{x-bench-chunks} and C{x-bench-delay-ms} override the model. C{GET
/bench/last/<model>} returns the last request body received for that model (this is how the
benchmark gets the exact body ccproxy sends upstream, for its "direct" column). C{GET /bench/stats}
returns the fake's own counters as JSON (L{Stats}): among them C{open_connections} (not counting
the connection that asks), C{active_streams} (paced streams that have sent their first byte
and neither finished nor lost their connection) and C{waiting_requests} (C{bench-wait-Ss}
requests not yet answered, whose connection is still open). With C{"stream": true}
the answer is SSE (chunked transfer encoding): a first chunk with the role, the content chunks,
a finish chunk (C{finish_reason: stop}), a usage chunk (C{choices: []}) and C{data: [DONE]}.
Otherwise it is one C{chat.completion} JSON object. Connections are kept alive.

The process exits by itself when its parent dies, and after C{--max-seconds} in any case.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import signal
import sys
from functools import lru_cache
from typing import Any, NamedTuple

__all__ = ["Shape", "Stats", "STATS", "shape_for", "stream_parts", "completion_body", "error_response", "main"]

_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\]*)"')
_STREAM = re.compile(rb'"stream"\s*:\s*true')
_SHAPE = re.compile(r"^bench-(?:chunks-(\d+)|slow-([\d.]+)s)(?:-every-([\d.]+)ms)?$")
_STATUS = re.compile(r"^bench-status-([1-5]\d\d)$")
_WAIT = re.compile(r"^bench-wait-([\d.]+)s$")
_WORDS = ("The", " relay", " flushes", " the", " parser", " before", " it", " finishes", ",", " so",
          " no", " event", " is", " lost", " when", " the", " upstream", " closes", " early", ".")
_CREATED = 1767225600
_MAX_HEAD = 64 * 1024
_MAX_BODY = 64 * 1024 * 1024


class Shape(NamedTuple):
    """How many content chunks to send, and the pause (seconds) before each."""

    chunks: int
    delay: float


@lru_cache(maxsize=256)
def shape_for(model: str, chunks_header: str | None = None, delay_header: str | None = None) -> Shape:
    """The answer's shape for a model name and the optional override headers."""
    chunks, delay = 10, 0.0
    match = _SHAPE.match(model)
    if match:
        count, seconds, every = match.groups()
        if count is not None:
            chunks = int(count)
            delay = float(every) / 1000 if every else 0.0
        else:
            delay = float(every) / 1000 if every else 0.05
            chunks = max(1, round(float(seconds) / delay))
    if chunks_header:
        chunks = int(chunks_header)
    if delay_header:
        delay = float(delay_header) / 1000
    return Shape(max(1, chunks), max(0.0, delay))


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-bench0000000000000000000000",
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": model,
        "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def _sse(payload: Any) -> bytes:
    data = b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)  # one HTTP chunk per SSE event


@lru_cache(maxsize=64)
def stream_parts(model: str, chunks: int) -> tuple[bytes, tuple[bytes, ...], bytes]:
    """The encoded stream: (role chunk, content chunks, finish + usage + [DONE] + last chunk)."""
    role = _sse(_chunk(model, {"role": "assistant", "content": ""}))
    content = tuple(_sse(_chunk(model, {"content": _WORDS[i % len(_WORDS)]})) for i in range(chunks))
    usage = {
        "id": "chatcmpl-bench0000000000000000000000",
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": model,
        "choices": [],
        "usage": {"prompt_tokens": 12000, "completion_tokens": chunks, "total_tokens": 12000 + chunks},
    }
    data_done = b"data: [DONE]\n\n"
    tail = (
        _sse(_chunk(model, {}, "stop"))
        + _sse(usage)
        + b"%x\r\n%s\r\n" % (len(data_done), data_done)
        + b"0\r\n\r\n"
    )
    return role, content, tail


@lru_cache(maxsize=64)
def _burst(model: str, chunks: int) -> bytes:
    role, content, tail = stream_parts(model, chunks)
    return _SSE_HEAD + role + b"".join(content) + tail


@lru_cache(maxsize=64)
def completion_body(model: str, chunks: int) -> bytes:
    """A whole non-streaming response (headers included)."""
    text = "".join(_WORDS[i % len(_WORDS)] for i in range(chunks))
    body = json.dumps(
        {
            "id": "chatcmpl-bench0000000000000000000000",
            "object": "chat.completion",
            "created": _CREATED,
            "model": model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 12000, "completion_tokens": chunks, "total_tokens": 12000 + chunks},
        },
        separators=(",", ":"),
    ).encode()
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body
    )


# OpenAI-style error bodies for bench-status-NNN; the messages avoid words (such as
# "overloaded") that would change how ccproxy maps the status.
_ERRORS = {
    400: ("invalid_request_error", None, "The bench asked for a 400."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided (bench)."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests (bench)."),
    500: ("server_error", None, "The server had an error while processing your request (bench)."),
    502: ("server_error", None, "Bad gateway (bench)."),
    503: ("server_error", None, "The service is unavailable right now (bench)."),
}
_REASONS = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


@lru_cache(maxsize=64)
def error_response(status: int) -> bytes:
    """A whole error response (headers included) for C{bench-status-NNN}; keeps the connection."""
    kind, code, message = _ERRORS.get(status, ("server_error" if status >= 500 else "invalid_request_error",
                                                None, f"The bench asked for a {status}."))
    body = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}},
                      separators=(",", ":")).encode()
    extra = b"retry-after: 0\r\n" if status == 429 else b""
    reason = _REASONS.get(status, "Error").encode()
    return (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n"
            % (status, reason, extra, len(body)) + body)


class Stats:
    """The fake's own counters, for C{GET /bench/stats}: what the upstream side saw."""

    def __init__(self) -> None:
        self.open_connections = 0
        self.connections_total = 0
        self.requests = 0
        self.error_answers = 0  # bench-status-NNN answers
        self.json_answers = 0  # non-streaming chat.completion answers
        self.streams_started = 0  # streaming answers, burst or paced
        self.streams_finished = 0  # ... that were written to the end
        self.streams_lost = 0  # paced streams whose connection closed before their end
        self.active_streams = 0  # paced streams between their first byte and their end or loss
        self.max_active_streams = 0
        self.waiting_requests = 0  # bench-wait-Ss requests held, connection open
        self.waits_lost = 0  # ... whose connection closed before the answer
        self.max_open_connections = 0

    def as_json(self, asking: int = 1) -> bytes:
        """The counters; C{open_connections} leaves out the C{asking} connection(s)."""
        values = dict(vars(self))
        values["open_connections"] -= asking
        return json.dumps(values, separators=(",", ":")).encode()


STATS = Stats()

_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
    b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
)
_LAST: dict[str, bytes] = {}  # the last request body per model, for GET /bench/last/<model>
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
_HEALTH = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class UpstreamProtocol(asyncio.Protocol):
    """One client connection: parse requests one at a time, answer each as its model says."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._busy = False  # a paced stream is being written, or an answer is held back
        self._waiting = False  # ... the latter (bench-wait-Ss)
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        STATS.open_connections += 1
        STATS.connections_total += 1
        STATS.max_open_connections = max(STATS.max_open_connections, STATS.open_connections)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        STATS.open_connections -= 1
        if self._busy and self._waiting:  # a held-back answer was never sent
            STATS.waiting_requests -= 1
            STATS.waits_lost += 1
        elif self._busy:  # a paced stream was cut short
            STATS.active_streams -= 1
            STATS.streams_lost += 1
        self._busy = self._waiting = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._busy:
            self._process()

    def _process(self) -> None:
        while self._transport is not None and not self._busy:
            buffer = self._buffer
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > _MAX_HEAD:
                    self._transport.close()
                return
            head = bytes(buffer[:end]).decode("latin-1")
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            start = end + 4
            if headers.get("transfer-encoding", "").lower() == "chunked":
                body, consumed = _dechunk(buffer, start)
                if body is None:
                    return
            else:
                length = int(headers.get("content-length", "0"))
                if length > _MAX_BODY:
                    self._transport.close()
                    return
                if len(buffer) < start + length:
                    return
                body, consumed = bytes(buffer[start : start + length]), start + length
            del buffer[:consumed]
            self._answer(parts[0] if parts else "", parts[1] if len(parts) > 1 else "", headers, body)

    def _answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        transport = self._transport
        assert transport is not None
        if method == "GET" and path in ("/health", "/v1/models"):
            transport.write(_HEALTH)
            return
        if method == "GET" and path == "/bench/stats":
            stats = STATS.as_json()
            transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                            % (len(stats), stats))
            return
        if method == "GET" and path.startswith("/bench/last/") and path[12:] in _LAST:
            last = _LAST[path[12:]]
            transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                            % (len(last), last))
            return
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            transport.write(_NOT_FOUND)
            return
        found = _MODEL.search(body)
        model = found.group(1).decode() if found else "bench"
        if model in _LAST or len(_LAST) < 64:
            _LAST[model] = body
        STATS.requests += 1
        status = _STATUS.match(model)
        if status is not None:
            STATS.error_answers += 1
            transport.write(error_response(int(status.group(1))))
            return
        wait = _WAIT.match(model)
        if wait is not None:
            self._busy = self._waiting = True
            STATS.waiting_requests += 1
            self._timer = self._loop.call_later(float(wait.group(1)), self._after_wait, model, body)
            return
        self._write_answer(model, headers, body)

    def _after_wait(self, model: str, body: bytes) -> None:
        self._timer = None
        self._busy = self._waiting = False
        STATS.waiting_requests -= 1
        self._write_answer(model, {}, body)
        if self._buffer and not self._busy:
            self._process()

    def _write_answer(self, model: str, headers: dict[str, str], body: bytes) -> None:
        transport = self._transport
        assert transport is not None
        shape = shape_for(model, headers.get("x-bench-chunks"), headers.get("x-bench-delay-ms"))
        if not _STREAM.search(body):
            STATS.json_answers += 1
            transport.write(completion_body(model, shape.chunks))
            return
        STATS.streams_started += 1
        if shape.delay == 0:
            STATS.streams_finished += 1
            transport.write(_burst(model, shape.chunks))
            return
        role, content, tail = stream_parts(model, shape.chunks)
        transport.write(_SSE_HEAD + role)
        self._busy = True
        STATS.active_streams += 1
        STATS.max_active_streams = max(STATS.max_active_streams, STATS.active_streams)
        self._pace(content, 0, tail, shape.delay)

    def _pace(self, content: tuple[bytes, ...], index: int, tail: bytes, delay: float) -> None:
        self._timer = self._loop.call_later(delay, self._next, content, index, tail, delay)

    def _next(self, content: tuple[bytes, ...], index: int, tail: bytes, delay: float) -> None:
        self._timer = None
        transport = self._transport
        if transport is None:
            return
        if index + 1 < len(content):
            transport.write(content[index])
            self._pace(content, index + 1, tail, delay)
            return
        transport.write(content[index] + tail)
        self._busy = False
        STATS.active_streams -= 1
        STATS.streams_finished += 1
        if self._buffer:
            self._process()


def _dechunk(buffer: bytearray, start: int) -> tuple[bytes | None, int]:
    """Decode a chunked request body starting at C{start}: (body, bytes consumed) or (None, 0)."""
    parts: list[bytes] = []
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None, 0
        size = int(bytes(buffer[position:line_end]).split(b";")[0], 16)
        data_start = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n", data_start)
            if trailer_end < 0:
                return None, 0
            return b"".join(parts), trailer_end + 2
        if len(buffer) < data_start + size + 2:
            return None, 0
        parts.append(bytes(buffer[data_start : data_start + size]))
        position = data_start + size + 2


async def _watch_parent(parent: int, deadline: float) -> None:
    loop = asyncio.get_running_loop()
    while os.getppid() == parent and loop.time() < deadline:
        await asyncio.sleep(0.5)


async def serve(port: int, max_seconds: float) -> None:
    """Listen on 127.0.0.1:C{port}, announce the port, serve until the parent goes away."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: UpstreamProtocol(loop), "127.0.0.1", port, backlog=4096, reuse_address=True
    )
    actual = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"READY {actual}\n")
    sys.stdout.flush()
    try:
        await _watch_parent(os.getppid(), loop.time() + max_seconds)
    finally:
        server.close()


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="exit after this long in any case")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        asyncio.run(serve(args.port, args.max_seconds))
    except (KeyboardInterrupt, SystemExit):
        pass


if __name__ == "__main__":
    main()

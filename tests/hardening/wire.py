"""A small, fast HTTP/1.1 client for the hardening tests: raw bytes out, parsed responses in.

One L{Pipeline} connection writes any number of requests at once (HTTP pipelining) and
parses the responses as they come back, in order: C{Content-Length}, chunked and
close-delimited bodies, C{1xx} interim responses skipped, C{HEAD} answers without a body.
L{run_cases} spreads many cases over a few concurrent connections; this is what lets
ten thousand requests through a proxy in a few seconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from attrs import define, field
from twisted.internet import defer
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import ClientCreator, Protocol
from twisted.python.failure import Failure


@define
class Response:
    """One parsed HTTP response."""

    status: int
    headers: dict[str, str]
    body: bytes
    raw_head: bytes = b""

    def json(self) -> Any:
        """The body decoded as JSON (C{None} when it is not JSON)."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class _Incomplete(Exception):
    """More bytes are needed."""


def parse_response(buffer: bytes, head_request: bool, closed: bool) -> tuple[Response, bytes]:
    """Parse one response from the front of C{buffer}; return it and the rest.

    @raise _Incomplete: C{buffer} does not hold a whole response yet.
    """
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            raise _Incomplete()
        head, rest = buffer[:end], buffer[end + 4 :]
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
        if 100 <= status < 200:
            buffer = rest  # an interim answer (100 Continue): the real one follows
            continue
        break
    if head_request or status in (204, 304):
        return Response(status, headers, b"", head), rest
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body, rest = _dechunk(rest)
        return Response(status, headers, body, head), rest
    if "content-length" in headers:
        length = int(headers["content-length"])
        if len(rest) < length:
            raise _Incomplete()
        return Response(status, headers, rest[:length], head), rest[length:]
    if not closed:
        raise _Incomplete()
    return Response(status, headers, rest, head), b""


def _dechunk(data: bytes) -> tuple[bytes, bytes]:
    parts = []
    while True:
        end = data.find(b"\r\n")
        if end < 0:
            raise _Incomplete()
        size = int(data[:end].split(b";")[0], 16)
        if size == 0:
            trailer_end = data.find(b"\r\n\r\n", end)
            if trailer_end < 0:
                raise _Incomplete()
            return b"".join(parts), data[trailer_end + 4 :]
        start = end + 2
        if len(data) < start + size + 2:
            raise _Incomplete()
        parts.append(data[start : start + size])
        data = data[start + size + 2 :]


class Pipeline(Protocol):
    """Writes its requests at once, then collects one response per request.

    C{done} fires with the responses (fewer than the requests if the server closed the
    connection early) once all have arrived or the connection is gone.
    """

    def __init__(self, requests: Sequence[bytes], head_flags: Sequence[bool]) -> None:
        self.requests = requests
        self.head_flags = head_flags
        self.responses: list[Response] = []
        self.buffer = b""
        self.closed = False
        self.done: defer.Deferred[list[Response]] = defer.Deferred()

    def connectionMade(self) -> None:  # noqa: N802
        self.transport.write(b"".join(self.requests))  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.buffer += data
        self._parse()
        if len(self.responses) == len(self.requests):
            self.transport.loseConnection()  # type: ignore[union-attr]

    def _parse(self) -> None:
        while self.buffer and len(self.responses) < len(self.requests):
            try:
                response, self.buffer = parse_response(
                    self.buffer, self.head_flags[len(self.responses)], self.closed
                )
            except _Incomplete:
                return
            self.responses.append(response)

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:  # noqa: N802
        self.closed = True
        self._parse()
        if not self.done.called:
            self.done.callback(self.responses)


async def pipeline(reactor: Any, port: int, requests: Sequence[bytes], head_flags: Sequence[bool] | None = None) -> list[Response]:
    """Send C{requests} on one connection; return the responses."""
    flags = list(head_flags) if head_flags is not None else [r.startswith(b"HEAD ") for r in requests]
    client = await ClientCreator(reactor, Pipeline, list(requests), flags).connectTCP("127.0.0.1", port)
    return await client.done


def http_request(
    body: bytes,
    path: str = "/v1/messages",
    method: str = "POST",
    headers: Iterable[tuple[str, str]] = (("Content-Type", "application/json"),),
    length: bool = True,
) -> bytes:
    """One HTTP/1.1 request, as bytes."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@define
class Case:
    """One malformed request and what its answer must be.

    @ivar statuses: the allowed statuses (any 4xx when empty).
    @ivar closes: the server closes the connection after answering (so the case gets a
        connection of its own).
    @ivar head: a HEAD request (its answer has no body).
    @ivar http_layer: answered by twisted.web's HTTP layer, not by ccproxy: only the
        status is checked (each such case says why in the test).
    """

    name: str
    raw: bytes
    statuses: frozenset[int] = frozenset()
    closes: bool = False
    head: bool = False
    http_layer: bool = False
    response: Response | None = field(default=None)


async def run_cases(reactor: Any, port: int, cases: Sequence[Case], per_connection: int = 50, parallel: int = 12) -> None:
    """Send every case, filling in C{case.response}: pipelined in batches of
    C{per_connection}, with C{parallel} connections at a time; cases that close the
    connection get one each."""
    batches: list[list[Case]] = []
    current: list[Case] = []
    for case in cases:
        if case.closes:
            batches.append([case])
            continue
        current.append(case)
        if len(current) == per_connection:
            batches.append(current)
            current = []
    if current:
        batches.append(current)
    semaphore = defer.DeferredSemaphore(parallel)

    async def one(batch: list[Case]) -> None:
        responses = await pipeline(reactor, port, [c.raw for c in batch], [c.head for c in batch])
        for case, response in zip(batch, responses):
            case.response = response

    await defer.gatherResults(
        [semaphore.run(lambda b=batch: defer.Deferred.fromCoroutine(one(b))) for batch in batches],
        consumeErrors=True,
    )

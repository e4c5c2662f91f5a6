"""A scripted OpenAI-compatible upstream for integration tests (127.0.0.1 only).

Each POST to C{/chat/completions} (or any path) is answered by the next L{Reply} of
its script, or by a callable that looks at the request body; every request is recorded
so tests can assert what ccproxy sent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Union

from attrs import define, evolve, field
from twisted.internet import reactor
from twisted.internet.interfaces import IPushProducer
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from zope.interface import implementer

from tests.tls import Authority


@define
class Reply:
    """One scripted answer.

    @ivar chunks: SSE chunks; dicts are sent as C{data: <json>}, bytes are sent raw.
    @ivar done: append C{data: [DONE]}.
    @ivar body: a JSON body to send instead of SSE (errors, non-streaming answers).
    @ivar interval: seconds between chunks (0 = all at once).
    @ivar hang: never answer (or stop after the chunks without finishing).
    @ivar cut: close the connection 50 ms after the chunks were sent, mid-body (a provider that
        fails mid-stream).
    @ivar silence: seconds of silence after the first C{silent_after} chunks, as a model that
        thinks without streaming its reasoning; then the rest follows.
    """

    status: int = 200
    chunks: list[Union[dict[str, Any], bytes]] = field(factory=list)
    done: bool = True
    body: Any = None
    headers: dict[str, str] = field(factory=dict)
    interval: float = 0.0
    hang: bool = False
    flood: bool = False
    cut: bool = False
    silence: float = 0.0
    silent_after: int = 1


@define
class Received:
    """One request the fake upstream got."""

    path: str
    headers: dict[str, str]
    body: Any
    peer_port: int = 0


Script = Union[list[Reply], Callable[[Any], Reply]]


class FakeOpenAI(Resource):
    """The scripted upstream resource."""

    isLeaf = True

    def __init__(self, script: Script) -> None:
        super().__init__()
        self.script = script
        self.received: list[Received] = []
        self.open_requests: list[Request] = []
        self.finished_or_lost = 0
        self.ended_at: list[float] = []  # time.monotonic() of each request's end or loss
        self.flood: Flood | None = None

    def render_POST(self, request: Request) -> int:  # noqa: N802
        raw = request.content.read() if request.content else b""
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        headers = {k.decode().lower(): v[-1].decode() for k, v in request.requestHeaders.getAllRawHeaders()}
        peer = request.getClientAddress()
        self.received.append(Received(request.path.decode(), headers, body, getattr(peer, "port", 0)))
        if callable(self.script):
            reply = self.script(body)
        else:
            reply = self.script.pop(0) if self.script else Reply(status=500, body={"error": {"message": "script exhausted"}})
        self.open_requests.append(request)
        request.notifyFinish().addBoth(self._gone, request)
        if reply.hang and not reply.chunks:
            return NOT_DONE_YET
        request.setResponseCode(reply.status)
        for name, value in reply.headers.items():
            request.setHeader(name, value)
        if reply.body is not None:
            data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
            if not reply.headers.get("content-type"):
                request.setHeader("content-type", "application/json")
            request.write(data)
            request.finish()
            return NOT_DONE_YET
        request.setHeader("content-type", "text/event-stream")
        if reply.flood:
            self.flood = Flood(request)
            request.registerProducer(self.flood, True)
            self.flood.resumeProducing()
            return NOT_DONE_YET
        frames = [c if isinstance(c, bytes) else b"data: " + json.dumps(c).encode() + b"\n\n" for c in reply.chunks]
        if reply.done and not reply.cut:
            frames.append(b"data: [DONE]\n\n")
        if reply.silence:
            for frame in frames[: reply.silent_after]:
                request.write(frame)
            rest, after = frames[reply.silent_after :], evolve(reply, silence=0.0)
            reactor.callLater(reply.silence, self._send, request, rest, after)  # type: ignore[attr-defined]
            return NOT_DONE_YET
        self._send(request, frames, reply)
        return NOT_DONE_YET

    def _send(self, request: Request, frames: list[bytes], reply: Reply) -> None:
        if request.finished or getattr(request, "_gone", False):
            return
        if reply.interval and frames:
            request.write(frames[0])
            reactor.callLater(reply.interval, self._send, request, frames[1:], reply)  # type: ignore[attr-defined]
            return
        for frame in frames:
            request.write(frame)
        if reply.cut:
            reactor.callLater(0.05, request.transport.loseConnection)  # type: ignore[attr-defined,union-attr]
        elif not reply.hang:
            request.finish()

    def _gone(self, result: Any, request: Request) -> None:
        request._gone = True  # type: ignore[attr-defined]
        self.finished_or_lost += 1
        self.ended_at.append(time.monotonic())
        if request in self.open_requests:
            self.open_requests.remove(request)


@implementer(IPushProducer)
class Flood:
    """Writes text chunks as fast as the proxy accepts them; records back-pressure."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.written = 0
        self.pauses = 0
        self.paused = False
        self.stopped = False
        frame = {"choices": [{"index": 0, "delta": {"content": "x" * 4000}, "finish_reason": None}]}
        self.frame = b"data: " + json.dumps(frame).encode() + b"\n\n"

    def pauseProducing(self) -> None:  # noqa: N802
        self.pauses += 1
        self.paused = True

    def resumeProducing(self) -> None:  # noqa: N802
        self.paused = False
        self._pump()

    def stopProducing(self) -> None:  # noqa: N802
        self.stopped = True

    def _pump(self) -> None:
        if self.paused or self.stopped or self.request.finished:
            return
        for _ in range(16):
            self.request.write(self.frame)
            self.written += len(self.frame)
            if self.paused:
                return
        reactor.callLater(0, self._pump)  # type: ignore[attr-defined]


def start_fake_upstream(script: Script, tls: Authority | None = None) -> tuple[FakeOpenAI, Any]:
    """Listen on 127.0.0.1:<free port>, behind TLS with C{tls}'s server certificate if
    given; return the resource and the listening port."""
    resource = FakeOpenAI(script)
    site = Site(resource)
    site.log = lambda request: None  # type: ignore[method-assign]
    if tls is not None:
        port = reactor.listenSSL(0, site, tls, interface="127.0.0.1")  # type: ignore[attr-defined]
    else:
        port = reactor.listenTCP(0, site, interface="127.0.0.1")  # type: ignore[attr-defined]
    return resource, port


# -- chunk builders ------------------------------------------------------------------------


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    """One chat.completion.chunk with C{delta} in choice 0."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "fake-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def usage_chunk(prompt: int = 100, completion: int = 20, cached: int = 0) -> dict[str, Any]:
    """The final C{choices: []} chunk carrying usage."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        },
    }


def text_reply(text: str, pieces: int = 3, finish: str = "stop") -> Reply:
    """A streamed text answer split into C{pieces} deltas."""
    size = max(1, -(-len(text) // pieces))
    parts = [text[i : i + size] for i in range(0, len(text), size)]
    chunks: list[Union[dict[str, Any], bytes]] = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": part}) for part in parts]
    chunks += [chunk({}, finish), usage_chunk()]
    return Reply(chunks=chunks)


def tool_call_reply(name: str, arguments: str, call_id: str = "call_1", fragments: int = 1) -> Reply:
    """A streamed tool call whose arguments arrive in C{fragments} pieces."""
    size = max(1, -(-len(arguments) // fragments))
    pieces = [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]
    chunks: list[Union[dict[str, Any], bytes]] = [
        chunk({"role": "assistant", "tool_calls": [{"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}]})
    ]
    chunks += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}) for piece in pieces]
    chunks += [chunk({}, "tool_calls"), usage_chunk()]
    return Reply(chunks=chunks)

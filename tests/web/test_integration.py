"""Integration: the real Site on 127.0.0.1 in front of a scripted upstream, over sockets."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest_twisted
import treq
from twisted.internet import defer, task
from twisted.internet.protocol import ClientCreator, Protocol
from twisted.logger import formatEvent, globalLogPublisher
from twisted.web.client import HTTPConnectionPool

from ccproxy import jsonio
from ccproxy.grammar import check_events, final_message
from ccproxy.sse import SSEParser
from tests.fake_upstream import Reply, chunk, text_reply, tool_call_reply

BASH_TOOL = {
    "name": "Bash",
    "description": "Run a shell command",
    "input_schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"command": {"type": "string"}},
        "required": ["command"],
        "additionalProperties": False,
    },
}


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def body(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "hello"}],
    }
    base.update(overrides)
    return base


def _nested(depth: int) -> list[Any]:
    """An array C{depth} levels deep."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


async def post(url: str, payload: Any, headers: dict[str, str] | None = None) -> tuple[Any, bytes]:
    from twisted.internet import reactor

    pool = HTTPConnectionPool(reactor, persistent=False)
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    response = await treq.post(
        url, data=data, headers={"content-type": "application/json", **(headers or {})}, pool=pool
    )
    content = await response.content()
    return response, content


def sse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    parser = SSEParser()
    events = parser.feed(raw) + parser.close()
    assert all(e.event for e in events), "every SSE event needs its event: line"
    return [(e.event or "", json.loads(e.data)) for e in events]


@pytest_twisted.ensureDeferred
async def test_streamed_text_is_a_valid_anthropic_stream(harness: Any) -> None:
    """Text deltas arrive as one text block inside a grammar-valid stream."""
    url = harness.start([text_reply("Hello there, world", pieces=4)])
    response, raw = await post(url + "/v1/messages?beta=true", body(stream=True))
    assert response.code == 200
    assert response.headers.getRawHeaders("content-type") == ["text/event-stream; charset=utf-8"]
    assert response.headers.getRawHeaders("request-id")[0].startswith("req_")
    events = sse_events(raw)
    check_events(events)
    message = final_message(events)
    assert message["content"] == [{"type": "text", "text": "Hello there, world"}]
    assert message["model"] == "claude-sonnet-4-5"
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["input_tokens"] == 100
    sent = harness.upstream.received[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.body["model"] == "gpt-5"
    assert sent.body["stream"] is True and sent.body["stream_options"] == {"include_usage": True}
    assert sent.headers["authorization"] == "Bearer sk-upstream-secret"


@pytest_twisted.ensureDeferred
async def test_non_streaming_client_gets_one_json_message(harness: Any) -> None:
    """A client without stream:true gets the assembled message as JSON."""
    url = harness.start([text_reply("Hi!")])
    response, raw = await post(url + "/v1/messages", body())
    assert response.code == 200
    message = json.loads(raw)
    assert message["type"] == "message"
    assert message["content"] == [{"type": "text", "text": "Hi!"}]
    assert message["stop_reason"] == "end_turn"
    assert message["id"].startswith("msg_")


@pytest_twisted.ensureDeferred
async def test_tool_call_in_many_fragments_becomes_one_tool_use(harness: Any) -> None:
    """Argument fragments are joined and sent as one validated input_json_delta."""
    arguments = json.dumps({"command": "echo fragmented && ls -la /tmp"})
    url = harness.start([tool_call_reply("Bash", arguments, "call_abc", fragments=12)])
    response, raw = await post(url + "/v1/messages", body(stream=True, tools=[BASH_TOOL]))
    events = sse_events(raw)
    check_events(events)
    deltas = [p["delta"] for n, p in events if n == "content_block_delta"]
    assert deltas == [{"type": "input_json_delta", "partial_json": '{"command":"echo fragmented && ls -la /tmp"}'}]
    message = final_message(events)
    assert message["content"] == [
        {"type": "tool_use", "id": "call_abc", "name": "Bash", "input": {"command": "echo fragmented && ls -la /tmp"}}
    ]
    assert message["stop_reason"] == "tool_use"
    tool = harness.upstream.received[0].body["tools"][0]["function"]
    assert "$schema" not in tool["parameters"]


@pytest_twisted.ensureDeferred
async def test_upstream_429_keeps_status_and_retry_after(harness: Any) -> None:
    """A rate limit too long to wait out stays a 429 rate_limit_error with retry-after in
    whole seconds (Claude Code then waits and retries itself)."""
    url = harness.start(
        [Reply(status=429, body={"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}}, headers={"retry-after-ms": "29500"})]
    )
    response, raw = await post(url + "/v1/messages", body(stream=True))
    assert response.code == 429
    payload = json.loads(raw)
    assert payload["type"] == "error"
    assert payload["error"]["type"] == "rate_limit_error"
    assert "Rate limit reached" in payload["error"]["message"]
    assert response.headers.getRawHeaders("retry-after") == ["30"]
    assert payload["request_id"] == response.headers.getRawHeaders("request-id")[0]


@pytest_twisted.ensureDeferred
async def test_upstream_errors_keep_their_status_class(harness: Any) -> None:
    """401 -> authentication_error, 500 -> api_error, 503 -> overloaded_error (529)."""
    url = harness.start(
        [
            Reply(status=401, body={"error": {"message": "Incorrect API key provided"}}),
            Reply(status=500, body={"error": {"message": "boom"}}),
            Reply(status=503, body=b"<html>Service Unavailable</html>", headers={"content-type": "text/html"}),
        ],
        upstream_retries=0,
    )
    seen = []
    for _ in range(3):
        response, raw = await post(url + "/v1/messages", body())
        seen.append((response.code, json.loads(raw)["error"]["type"]))
    assert seen == [(401, "authentication_error"), (500, "api_error"), (529, "overloaded_error")]


@pytest_twisted.ensureDeferred
async def test_unreachable_upstream_is_a_502_naming_the_host(harness: Any) -> None:
    """Connection refused -> 502 api_error that names the upstream host."""
    dead_port = free_port()
    url = harness.start([], openai_base_url=f"http://127.0.0.1:{dead_port}/v1")
    response, raw = await post(url + "/v1/messages", body())
    assert response.code == 502
    error = json.loads(raw)["error"]
    assert error["type"] == "api_error"
    assert f"127.0.0.1:{dead_port}" in error["message"]


@pytest_twisted.ensureDeferred
async def test_bad_requests_are_400_invalid_request_error(harness: Any) -> None:
    """Invalid JSON and missing required fields are named in a 400."""
    url = harness.start([])
    cases = [
        (b"{not json", "not valid JSON"),
        (json.dumps({"messages": [], "max_tokens": 5}).encode(), "model"),
        (json.dumps({"model": "x", "max_tokens": 5}).encode(), "messages"),
        (json.dumps({"model": "x", "messages": [{"role": "user", "content": "hi"}]}).encode(), "max_tokens"),
        (json.dumps(body(max_tokens="many")).encode(), "max_tokens"),
        (json.dumps(body(metadata={"a": _nested(127)})).encode(), "nests deeper than 128 levels"),
        (json.dumps(body(messages=[{"role": "user", "content": _nested(126)}])).encode(), "nests deeper than 128 levels"),
        (json.dumps(body(messages=[{"role": "user", "content": "hi"}, _nested(127)])).encode(), "nests deeper than 128 levels"),
        (json.dumps(body(tools=[{"name": "t", "input_schema": {"type": "object", "x": _nested(125)}}])).encode(),
         "nests deeper than 128 levels"),
    ]
    for payload, fragment in cases:
        response, raw = await post(url + "/v1/messages", payload)
        assert response.code == 400, raw
        error = json.loads(raw)["error"]
        assert error["type"] == "invalid_request_error"
        assert fragment in error["message"]
    assert harness.upstream.received == []


@pytest_twisted.ensureDeferred
async def test_a_body_128_levels_deep_is_answered_also_when_its_parts_are_remembered(harness: Any) -> None:
    """The depth limit is checked as parts are first seen; resent parts pass as they did."""
    url = harness.start([Reply(chunks=[chunk({"content": "ok"}), chunk({}, "stop")])] * 2)
    deep = body(metadata={"a": _nested(126)}, tools=[{"name": "t", "input_schema": {"type": "object", "x": _nested(124)}}])
    deep["messages"].append({"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_1", "name": "t", "input": {"n": _nested(122)}}]})
    deep["messages"].append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}]})
    for _ in range(2):
        response, raw = await post(url + "/v1/messages", deep)
        assert response.code == 200, raw
    deeper = json.loads(json.dumps(deep))
    deeper["messages"][1]["content"][0]["input"]["n"] = _nested(123)  # a new message, one level too deep
    assert not jsonio.deeper_than(deep, 128) and jsonio.deeper_than(deeper, 128)
    response, raw = await post(url + "/v1/messages", deeper)
    assert response.code == 400 and "nests deeper than 128 levels" in json.loads(raw)["error"]["message"]
    assert len(harness.upstream.received) == 2


@pytest_twisted.ensureDeferred
async def test_probes_404_and_405_are_json(harness: Any, reactor: Any) -> None:
    """/health, /, HEAD /api/hello answer; unknown paths 404, wrong methods 405, as JSON."""
    url = harness.start([])
    pool = HTTPConnectionPool(reactor, persistent=False)
    health = await treq.get(url + "/health", pool=pool)
    status = json.loads(await health.content())
    assert status["status"] == "ok" and status["upstream"].startswith("127.0.0.1:")
    assert "sk-upstream-secret" not in json.dumps(status)
    root = await treq.get(url + "/", pool=pool)
    assert root.code == 200
    for path in ("/api/hello", "/"):
        head = await treq.head(url + path, pool=pool)
        assert head.code == 200
    missing = await treq.get(url + "/v2/nothing", pool=pool)
    assert missing.code == 404
    assert json.loads(await missing.content())["error"]["type"] == "not_found_error"
    wrong = await treq.get(url + "/v1/messages", pool=pool)
    assert wrong.code == 405
    assert json.loads(await wrong.content())["error"]["type"] == "invalid_request_error"


@pytest_twisted.ensureDeferred
async def test_count_tokens_answers_locally(harness: Any) -> None:
    """count_tokens is counted without calling the upstream."""
    url = harness.start([])
    response, raw = await post(url + "/v1/messages/count_tokens?beta=true", {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hello world " * 50}]})
    assert response.code == 200
    assert json.loads(raw)["input_tokens"] > 50
    assert harness.upstream.received == []


@pytest_twisted.ensureDeferred
async def test_stream_cut_short_ends_with_error_event(harness: Any) -> None:
    """An upstream that stops without finish_reason or [DONE] gives an error event."""
    url = harness.start([Reply(chunks=[chunk({"content": "partial"})], done=False)])
    response, raw = await post(url + "/v1/messages", body(stream=True))
    events = sse_events(raw)
    check_events(events)
    assert events[-1][0] == "error"
    assert events[-1][1]["error"]["type"] == "api_error"


class RawClient(Protocol):
    """A bare HTTP/1.1 client that can hang up at any moment."""

    def __init__(self) -> None:
        self.received = b""
        self.got_data: defer.Deferred[None] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.received += data
        if not self.got_data.called and b"content_block_delta" in self.received:
            self.got_data.callback(None)


async def open_stream(port: int, headers: bytes = b"", payload: bytes | None = None) -> RawClient:
    """Post a streaming request on a raw connection; return once content is flowing."""
    from twisted.internet import reactor

    client = await ClientCreator(reactor, RawClient).connectTCP("127.0.0.1", port)
    payload = payload if payload is not None else json.dumps(body(stream=True)).encode()
    client.transport.write(
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + headers
        + b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
    )
    await client.got_data
    return client


@pytest_twisted.ensureDeferred
async def test_client_disconnect_cancels_upstream(harness: Any, reactor: Any) -> None:
    """Esc in Claude Code: closing the client connection mid-stream closes the upstream
    connection within 100 ms, stops the ping timer and logs the request as cancelled."""
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        slow = Reply(chunks=[chunk({"content": f"word{i} "}) for i in range(400)], interval=0.02)
        url = harness.start([slow], ping_interval=0.05)
        port = int(url.rsplit(":", 1)[1])
        client = await open_stream(port)
        assert harness.upstream.finished_or_lost == 0
        assert any(_is_ping_timer(call) for call in reactor.getDelayedCalls())
        started = reactor.seconds()
        client.transport.loseConnection()
        while not harness.upstream.finished_or_lost and reactor.seconds() - started < 2:
            await task.deferLater(reactor, 0.005, lambda: None)
        assert harness.upstream.finished_or_lost == 1
        assert reactor.seconds() - started < 0.1
        assert not any(_is_ping_timer(call) for call in reactor.getDelayedCalls())
        lines = [formatEvent(e) for e in events if e.get("ccproxy_request")]
        assert len(lines) == 1 and " cancelled " in lines[0]
    finally:
        globalLogPublisher.removeObserver(events.append)


def _is_ping_timer(call: Any) -> bool:
    """Whether a reactor DelayedCall is a ClientStream's keep-alive LoopingCall."""
    looping = call.func  # LoopingCall schedules itself: func is the LoopingCall
    return getattr(getattr(looping, "f", None), "__name__", "") == "_keepalive"


@pytest_twisted.ensureDeferred
async def test_client_gone_before_upstream_headers_cancels_upstream(harness: Any, reactor: Any) -> None:
    """A client that leaves while the upstream is still silent (no headers yet) must not
    leave the upstream request running (found by the soak: it held the connection)."""
    url = harness.start([Reply(hang=True), Reply(hang=True)])
    port = int(url.rsplit(":", 1)[1])
    for stream in (True, False):
        before = harness.upstream.finished_or_lost
        client = await ClientCreator(reactor, RawClient).connectTCP("127.0.0.1", port)
        payload = json.dumps(body(stream=stream)).encode()
        client.transport.write(
            b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
        )
        while len(harness.upstream.received) < (1 if stream else 2):
            await task.deferLater(reactor, 0.01, lambda: None)
        client.transport.loseConnection()
        started = reactor.seconds()
        while harness.upstream.finished_or_lost == before and reactor.seconds() - started < 2:
            await task.deferLater(reactor, 0.01, lambda: None)
        assert harness.upstream.finished_or_lost == before + 1, "upstream request left running"


@pytest_twisted.ensureDeferred
async def test_count_tokens_needs_a_message(harness: Any) -> None:
    """count_tokens, like Anthropic, refuses an empty conversation."""
    url = harness.start([])
    response, raw = await post(url + "/v1/messages/count_tokens", {"model": "claude-opus-5-5", "messages": []})
    assert response.code == 400
    assert "messages" in json.loads(raw)["error"]["message"]


def _compact(payload: dict[str, Any]) -> bytes:
    """As Claude Code writes a body (JSON.stringify: no spaces), which ccproxy can split by its bytes."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


@pytest_twisted.ensureDeferred
async def test_a_resent_body_is_answered_as_a_fresh_proxy_answers_it(harness: Any) -> None:
    """A body that resends the bytes of the one before (ccproxy.layouts) gets what a proxy that never
    saw that one gives it: the same upstream body when valid, the same 400 when not."""
    answer = Reply(chunks=[chunk({"content": "ok"}), chunk({}, "stop")])
    resending = harness.start([answer] * 2)
    resending_upstream = harness.upstream
    fresh = harness.start([answer])
    first = body(messages=[{"role": "user", "content": [{"type": "text", "text": "list the files"}]}],
                 system=[{"type": "text", "text": "You are Claude Code."}])
    response, raw = await post(resending + "/v1/messages", _compact(first))
    assert response.code == 200, raw
    turn = json.loads(json.dumps(first))
    turn["messages"] += [{"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
                         {"role": "user", "content": [{"type": "text", "text": "and now the tests"}]}]
    response, raw = await post(resending + "/v1/messages", _compact(turn))
    assert response.code == 200, raw
    response, raw = await post(fresh + "/v1/messages", _compact(turn))
    assert response.code == 200, raw
    assert resending_upstream.received[1].body == harness.upstream.received[0].body
    broken = json.loads(json.dumps(turn))
    broken["messages"].append({"role": "user", "content": [{"type": "no such block"}]})
    deep = json.loads(json.dumps(turn))
    deep["messages"].append({"role": "user", "content": _nested(126)})
    for payload in (broken, deep):
        errors = []
        for url in (resending, fresh):
            response, raw = await post(url + "/v1/messages", _compact(payload))
            assert response.code == 400, raw
            errors.append(json.loads(raw)["error"])
        assert errors[0] == errors[1]
    assert len(resending_upstream.received) == 2

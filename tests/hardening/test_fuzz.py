"""Bad input over HTTP: ten thousand malformed requests against a running proxy.

One ccproxy Site on 127.0.0.1 in front of the scripted upstream, with a 64 KiB body cap.
The malformed requests come from exhaustive sweeps (every field with every wrong JSON
kind, every required field missing, the body cut at every byte), from hypothesis
(one to three rules broken at once, broken JSON, garbage bytes) and from hand-written
HTTP-level cases (content types, encodings, methods, paths, broken request lines and
headers, oversized headers, bodies over the cap). They are pipelined over a dozen
connections at a time.

Every answer must be a 4xx in the Anthropic error shape, nothing may reach the
upstream, the log must hold no traceback, and the proxy must answer a valid request
afterwards. The counts are printed as C{N cases, N 4xx, 0 5xx}.
"""

from __future__ import annotations

import gzip
import json
import time
import zlib
from typing import Any

import pytest
import pytest_twisted
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from twisted.internet import defer, task
from twisted.internet.protocol import ClientCreator

from ccproxy.errors import ERROR_TYPES
from tests.fake_upstream import Reply, text_reply
from tests.hardening import cases
from tests.hardening.wire import (
    Case,
    Pipeline,
    Response,
    http_request,
    pipeline,
    run_cases,
)

CAP = 64 * 1024
MESSAGES = "/v1/messages"
COUNT = "/v1/messages/count_tokens"
HYPOTHESIS_EXAMPLES = 1250  # four cases each
JSON_HEADERS = (("Content-Type", "application/json"),)


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _post(name: str, body: bytes, path: str = MESSAGES, statuses: tuple[int, ...] = (400,), **options: Any) -> Case:
    return Case(name, http_request(body, path, **options), frozenset(statuses))


# -- the cases -----------------------------------------------------------------------------


def swept_cases() -> list[Case]:
    """Every field with every wrong kind, every required field missing, every cut, and
    invalid UTF-8 at every offset."""
    out = []
    for count_tokens, path in ((False, MESSAGES), (True, COUNT)):
        for name, body in cases.every_wrong_type(count_tokens):
            out.append(_post(f"{path}: {name}", _dumps(body), path))
        for name, body in cases.every_missing_field(count_tokens):
            out.append(_post(f"{path}: {name}", _dumps(body), path))
        for name, raw in cases.every_cut(count_tokens):
            out.append(_post(f"{path}: {name}", raw, path))
        if not count_tokens:
            for name, raw in cases.every_bad_byte():
                out.append(_post(f"{path}: {name}", raw, path))
    return out


def hypothesis_cases(examples: int = HYPOTHESIS_EXAMPLES) -> list[Case]:
    """Bodies from hypothesis: rules broken in combination, broken JSON, garbage."""
    out: list[Case] = []

    @settings(
        max_examples=examples,
        database=None,
        derandomize=True,  # the same cases on every run: a failure here is reproducible
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        cases.broken_body(),
        cases.broken_body(count_tokens=True),
        cases.broken_json(),
        st.one_of(cases.broken_json(), st.binary(max_size=64), cases.json_values.map(_dumps)),
        st.sampled_from([MESSAGES, COUNT]),
    )
    def collect(
        messages: tuple[str, Any], counting: tuple[str, Any], bad_json: bytes, other: bytes, path: str
    ) -> None:
        out.append(_post(f"{MESSAGES}: {messages[0]}", _dumps(messages[1])))
        out.append(_post(f"{COUNT}: {counting[0]}", _dumps(counting[1]), COUNT))
        out.append(_post(f"{MESSAGES}: broken JSON {bad_json[:60]!r}", bad_json))
        # a JSON value that is not an object, bytes that are not JSON, or broken JSON
        if isinstance(json_or_none(other), dict):
            other = b"[" + other + b"]"
        out.append(_post(f"{path}: not a request {other[:60]!r}", other, path))

    collect()
    return out


def json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def body_cases() -> list[Case]:
    """Hand-written bodies: shapes, sizes, nesting and encodings a parser can choke on."""
    valid = _dumps(cases.base())
    deep = 10_000
    bodies: list[tuple[str, bytes]] = [
        ("empty body", b""),
        ("whitespace body", b" \r\n\t "),
        ("null", b"null"),
        ("number", b"42"),
        ("string", b'"hello"'),
        ("array", b"[]"),
        ("array of the request", b"[" + valid + b"]"),
        ("empty object", b"{}"),
        ("two documents", valid + valid),
        ("trailing garbage", valid + b"x"),
        ("trailing comma", valid[:-1] + b",}"),
        ("single quotes", valid.replace(b'"', b"'")),
        ("comment", b"/* hi */" + valid),
        ("NUL byte", valid[:20] + b"\x00" + valid[20:]),
        ("raw newline in a string", valid.replace(b"look at these", b"look\nat these")),
        ("5000-digit integer", valid.replace(b'"max_tokens":1024', b'"max_tokens":' + b"9" * 5000)),
        ("huge exponent", valid.replace(b'"max_tokens":1024', b'"max_tokens":1e999999')),
        ("negative max_tokens", valid.replace(b'"max_tokens":1024', b'"max_tokens":-1')),
        ("float max_tokens", valid.replace(b'"max_tokens":1024', b'"max_tokens":1024.0')),
        ("Latin-1 byte in a string", valid.replace(b"look at these", b"caf\xe9")),
        ("invalid start byte", valid.replace(b"look at these", b"\xff\xfe")),
        ("truncated 2-byte sequence", valid.replace(b"look at these", b"\xc3")),
        ("truncated 4-byte sequence", valid.replace(b"look at these", b"\xf0\x9f\x98")),
        ("overlong encoding of /", valid.replace(b"look at these", b"\xc0\xaf")),
        ("code point above U+10FFFF", valid.replace(b"look at these", b"\xf4\x90\x80\x80")),
        ("invalid UTF-8 in a key", valid.replace(b'"model"', b'"mod\xffel"')),
        ("invalid UTF-8 in the model", valid.replace(b"claude-sonnet-4-5", b"claude\x80")),
        (f"{deep} levels of [", b"[" * deep),
        (f"{deep} levels of [ closed", b"[" * deep + b"]" * deep),
        (f"{deep} levels of {{", b'{"a":' * deep),
        (f"{deep} levels of {{ closed", b'{"a":' * deep + b"1" + b"}" * deep),
        (f"{deep} levels in metadata", valid[:-1] + b',"metadata":' + b"[" * deep + b"]" * deep + b"}"),
        (f"{deep} levels in a tool schema", valid.replace(b'"properties":{', b'"properties":' + b"[" * deep + b"]" * deep + b',"x":{')),
        ("200 levels in a tool schema", valid.replace(b'"properties":{', b'"properties":' + b"[" * 200 + b"]" * 200 + b',"x":{')),
        ("600 levels in a tool input", valid.replace(b'"input":{', b'"input":{"n":' + b"[" * 600 + b"]" * 600 + b",")),
        ("900 levels in metadata", valid[:-1] + b',"metadata":{"a":' + b"[" * 900 + b"]" * 900 + b"}}"),
        ("300 nested tool results", _nested_tool_results(300)),
        ("70 nested tool results", _nested_tool_results(70)),
        ("huge role", _dumps(cases.put(cases.base(), ("messages", 0, "role"), "user" * 12_000))),
        ("huge block type", _dumps(cases.put(cases.base(), cases.U0 + (0, "type"), "t" * 50_000))),
        ("huge key", valid[:-1] + b',"' + b"k" * 50_000 + b'":1,"max_tokens":"x"}'),
        ("huge model, wrong max_tokens", _dumps(cases.put(cases.put(cases.base(), ("model",), "m" * 50_000), ("max_tokens",), "1"))),
        ("many messages, one broken", _dumps(cases.put(cases.base(), ("messages",), [{"role": "user", "content": "x"}] * 1500 + [{"role": "robot", "content": "x"}]))),
        ("many blocks, one unknown", _dumps(cases.put(cases.base(), cases.U0, [{"type": "text", "text": "x"}] * 1500 + [{"type": "hologram"}]))),
    ]
    # Nesting depths around the limits of ccproxy (128), orjson (255 out, 1024 in) and
    # Python's recursion limit, in the free-form parts of a request.
    for depth in (129, 255, 256, 500, 900, 930, 960, 1000, 1023, 1024, 1025, 2000):
        nest = b"[" * depth + b"]" * depth
        bodies += [
            (f"{depth} levels in a tool input", valid.replace(b'"input":{', b'"input":{"n":' + nest + b",")),
            (f"{depth} levels in a tool schema", valid.replace(b'"properties":{', b'"properties":' + nest + b',"x":{')),
            (f"{depth} levels in an image source", valid.replace(b'"source":{', b'"source":{"n":' + nest + b",", 1)),
            (f"{depth} levels in metadata", valid[:-1] + b',"metadata":{"a":' + nest + b"}}"),
        ]
    out = [_post(name, body) for name, body in bodies]
    # count_tokens ignores the generation knobs, so only the others are broken there.
    knobs = ("max_tokens", "huge key", "huge exponent")
    out += [_post(f"count_tokens: {name}", body, COUNT) for name, body in bodies if not any(k in name for k in knobs)]
    return out


def _nested_tool_results(depth: int) -> bytes:
    inner: Any = "deep"
    for _ in range(depth):
        inner = [{"type": "tool_result", "tool_use_id": "toolu_01", "content": inner}]
    return _dumps(cases.put(cases.base(), cases.U2, inner))


def header_cases() -> list[Case]:
    """Content types, content encodings, methods and paths: answered, connection kept."""
    valid = _dumps(cases.base())
    counting = _dumps(cases.base(count_tokens=True))
    out: list[Case] = []
    for path, body in ((MESSAGES, valid), (COUNT, counting)):
        for ctype in (
            None,
            "text/plain",
            "text/plain; charset=utf-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=xyz",
            "application/xml",
            "application/jsonx",
            "json",
            "",
            "*/*",
        ):
            headers = () if ctype is None else (("Content-Type", ctype),)
            out.append(_post(f"{path}: content-type {ctype!r}", body, path, (415,), headers=headers))
        out.append(
            _post(
                f"{path}: multipart body",
                b"--xyz\r\nContent-Disposition: form-data; name=a\r\n\r\n" + body + b"\r\n--xyz--\r\n",
                path,
                (415,),
                headers=(("Content-Type", "multipart/form-data; boundary=xyz"),),
            )
        )
        out.append(
            _post(f"{path}: broken multipart", b"--xyz\r\ngarbage", path, (415,), headers=(("Content-Type", "multipart/form-data; boundary=xyz"),))
        )
        encodings: list[tuple[str, bytes]] = [
            ("gzip", gzip.compress(body)),
            ("x-gzip", gzip.compress(body)),
            ("deflate", zlib.compress(body)),
            ("br", body),
            ("zstd", body),
            ("gzip, identity", gzip.compress(body)),
            ("compress", body),
            ("gzip", gzip.compress(b"\x00" * CAP * 16)),  # a small bomb: 1 MiB unpacked
            ("gzip", b"\x1f\x8b\x08\x00garbage"),
        ]
        for encoding, data in encodings:
            out.append(_post(f"{path}: content-encoding {encoding}", data, path, (415,), headers=JSON_HEADERS + (("Content-Encoding", encoding),)))
    for method in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "post", "BREW", "HEAD"):
        for path in (MESSAGES, COUNT):
            out.append(Case(f"{method} {path}", http_request(valid, path, method), frozenset({405}), head=method == "HEAD"))
    for path in ("/v1", "/v1/", "/v1/messages/", "/v1/message", "/v1/messages/count_tokens/x", "/v1/complete",
                 "/v2/messages", "/v1/models", "//v1/messages", "/v1/messages%00", "/%ff%fe", "/v1/../v1/messages",
                 "/v1/messages/../../etc/passwd", "/" + "a" * 4000, "http://evil.example/v1/messages",
                 "/v1/messages\x7f"):
        out.append(Case(f"POST {path[:60]!r}", http_request(valid, path), frozenset({404, 405})))
    # The asterisk-form target (RFC 9110 9.3.7, only meaningful for OPTIONS) is answered
    # by twisted.web itself, before any resource: 405 with "Allow: OPTIONS" and no body.
    # That answer is correct HTTP; no Anthropic client sends it.
    out.append(Case("POST *", http_request(valid, "*"), frozenset({405}), http_layer=True))
    out.append(Case("POST /", http_request(valid, "/"), frozenset({405})))
    out.append(Case("POST /health", http_request(valid, "/health"), frozenset({405})))
    out.append(Case("POST /api/hello", http_request(valid, "/api/hello"), frozenset({405})))
    out.append(Case("no Host header", request_without_host(), frozenset({400})))
    return out


def request_without_host() -> bytes:
    """HTTP/1.1 requires Host; twisted does not, and neither does ccproxy: an invalid
    body is what makes this one a 400."""
    body = b"{}"
    return b"POST /v1/messages HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n" + body


def http_cases() -> list[Case]:
    """Requests the HTTP parser itself rejects; the server answers and closes."""
    valid = _dumps(cases.base())
    head = b"Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
    raw: list[tuple[str, bytes, frozenset[int]]] = [
        ("request line without a version", b"POST /v1/messages\r\n" + head + b"\r\n", frozenset({400})),
        ("request line with four parts", b"POST /v1/messages HTTP/1.1 extra\r\n" + head + b"\r\n", frozenset({400})),
        ("empty request line twice", b"\r\n\r\n", frozenset({400})),
        ("binary garbage", bytes(range(256)) + b"\r\n\r\n", frozenset({400})),
        ("TLS client hello", bytes.fromhex("160301020001000200030301") + b"\x00" * 40 + b"\r\n\r\n", frozenset({400})),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", frozenset({400, 404, 405})),
        ("header without a colon", b"POST /v1/messages HTTP/1.1\r\n" + head + b"Broken header\r\n\r\n", frozenset({400})),
        ("space in a header name", b"POST /v1/messages HTTP/1.1\r\n" + head + b"Bad Name: x\r\n\r\n", frozenset({400})),
        ("NUL in a header value", b"POST /v1/messages HTTP/1.1\r\n" + head + b"X-A: a\x00b\r\n\r\n", frozenset({400})),
        ("non-numeric Content-Length", b"POST /v1/messages HTTP/1.1\r\n" + head + b"Content-Length: abc\r\n\r\n", frozenset({400})),
        ("negative Content-Length", b"POST /v1/messages HTTP/1.1\r\n" + head + b"Content-Length: -1\r\n\r\n", frozenset({400})),
        ("Content-Length with a sign", b"POST /v1/messages HTTP/1.1\r\n" + head + b"Content-Length: +2\r\n\r\n{}", frozenset({400})),
        ("two Content-Lengths", b"POST /v1/messages HTTP/1.1\r\n" + head + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}", frozenset({400})),
        ("Content-Length and chunked", b"POST /v1/messages HTTP/1.1\r\n" + head + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", frozenset({400})),
        ("Transfer-Encoding gzip", b"POST /v1/messages HTTP/1.1\r\n" + head + b"Transfer-Encoding: gzip\r\n\r\n", frozenset({400})),
        ("Transfer-Encoding gzip, chunked", b"POST /v1/messages HTTP/1.1\r\n" + head + b"Transfer-Encoding: gzip, chunked\r\n\r\n", frozenset({400})),
        ("chunk size not hex", b"POST /v1/messages HTTP/1.1\r\n" + head + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", frozenset({400})),
        ("chunk longer than its size", b"POST /v1/messages HTTP/1.1\r\n" + head + b"Transfer-Encoding: chunked\r\n\r\n1\r\n{}\r\n0\r\n\r\n", frozenset({400})),
        ("negative chunk size", b"POST /v1/messages HTTP/1.1\r\n" + head + b"Transfer-Encoding: chunked\r\n\r\n-2\r\n{}\r\n0\r\n\r\n", frozenset({400})),
        ("header line over 16 KiB", b"POST /v1/messages HTTP/1.1\r\n" + head + b"X-Big: " + b"a" * 20_000 + b"\r\n\r\n", frozenset({431})),
        ("request line over 16 KiB", b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n" + head + b"\r\n", frozenset({431})),
        ("headers over 16 KiB in total", b"POST /v1/messages HTTP/1.1\r\n" + head + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 900) for i in range(20)) + b"\r\n", frozenset({431})),
        ("600 headers", b"POST /v1/messages HTTP/1.1\r\n" + head + b"".join(b"X-%d: v\r\n" % i for i in range(600)) + b"\r\n", frozenset({431})),
        ("body over the cap (Content-Length)", http_request(valid + b" " * CAP), frozenset({413})),
        ("10 GB declared, nothing sent", b"POST /v1/messages HTTP/1.1\r\n" + head + b"Content-Length: 10000000000\r\n\r\n", frozenset({413})),
        ("over the cap with Expect: 100-continue", b"POST /v1/messages HTTP/1.1\r\n" + head + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % (CAP + 1), frozenset({413})),
        ("chunked body over the cap", b"POST /v1/messages HTTP/1.1\r\n" + head + b"Transfer-Encoding: chunked\r\n\r\n" + b"".join([b"4000\r\n" + b" " * 0x4000 + b"\r\n"] * 5) + b"0\r\n\r\n", frozenset({413})),
        ("count_tokens over the cap", http_request(b"[" + b" " * CAP + b"]", COUNT), frozenset({413})),
        ("huge role over the cap", http_request(_dumps(cases.put(cases.base(), ("messages", 0, "role"), "u" * CAP))), frozenset({413})),
    ]
    return [Case(name, data, statuses, closes=True) for name, data, statuses in raw]


# -- checking ------------------------------------------------------------------------------


def problem(case: Case) -> str | None:
    """What is wrong with C{case}'s answer, or C{None}."""
    response = case.response
    if response is None:
        return "no answer"
    if not 400 <= response.status < 500:
        return f"status {response.status}: {response.body[:200]!r}"
    if case.statuses and response.status not in case.statuses:
        return f"status {response.status}, expected {sorted(case.statuses)}: {response.body[:200]!r}"
    if case.head or case.http_layer:
        return None
    payload = response.json()
    if not (
        isinstance(payload, dict)
        and payload.get("type") == "error"
        and isinstance(payload.get("error"), dict)
        and isinstance(payload["error"].get("type"), str)
        and isinstance(payload["error"].get("message"), str)
    ):
        return f"not an Anthropic error body: {response.body[:200]!r}"
    expected = ERROR_TYPES.get(response.status, "invalid_request_error")
    if payload["error"]["type"] != expected:
        return f"error.type {payload['error']['type']!r} for {response.status}, expected {expected!r}"
    if response.headers.get("content-type", "").split(";")[0] != "application/json":
        return f"content-type {response.headers.get('content-type')!r}"
    if not response.headers.get("request-id", "").startswith("req_"):
        return "no request-id header"
    return None


def report(all_cases: list[Case], seconds: float) -> tuple[str, list[str]]:
    statuses = [c.response.status for c in all_cases if c.response is not None]
    summary = (
        f"{len(all_cases)} cases, {sum(400 <= s < 500 for s in statuses)} 4xx, "
        f"{sum(s >= 500 for s in statuses)} 5xx ({seconds:.1f} s)"
    )
    problems = [f"{c.name[:120]}: {p}" for c in all_cases if (p := problem(c)) is not None]
    return summary, problems


def upstream_script(body: Any) -> Reply:
    """Anything that reaches the upstream gets a normal answer (and is counted there)."""
    return text_reply("this request was valid")


def _valid_stream() -> bytes:
    return http_request(_dumps(cases.base()))


# -- tests ---------------------------------------------------------------------------------


@pytest.mark.timeout(90)
@pytest_twisted.ensureDeferred
async def test_ten_thousand_malformed_requests(harness: Any, reactor: Any, log_errors: Any, capsys: Any) -> None:
    """Every malformed request gets a 4xx Anthropic error; nothing goes upstream; no
    traceback; the proxy still serves afterwards."""
    started = time.monotonic()
    all_cases = swept_cases() + hypothesis_cases() + body_cases() + header_cases() + http_cases()
    generated = time.monotonic() - started
    url = harness.start(upstream_script, max_request_bytes=CAP)
    port = int(url.rsplit(":", 1)[1])

    # Pipelines mixing valid requests in: answers must stay in order.
    controls = [Case("control: valid stream", _valid_stream(), frozenset({200})) for _ in range(5)]
    mixed: list[Case] = []
    for index, case in enumerate(all_cases):
        mixed.append(case)
        if index % 2000 == 1000 and controls:
            mixed.append(controls.pop())
    sending = time.monotonic()
    await run_cases(reactor, port, mixed)
    summary, problems = report(all_cases, time.monotonic() - sending)
    summary += f"; generated in {generated:.1f} s"

    with capsys.disabled():
        print(f"\n[hardening] {summary}")
    assert len(all_cases) >= 10_000, summary
    assert not problems, summary + "\n" + "\n".join(problems[:60])
    assert not log_errors, summary + "\n" + log_errors.describe()
    for control in mixed:
        if control.name.startswith("control"):
            assert control.response is not None and control.response.status == 200, control.response
            assert b"event: message_stop" in control.response.body
    # Only the controls reached the upstream.
    assert len(harness.upstream.received) == 5, summary
    after, raw = await _post_once(reactor, port, _valid_stream())
    assert after.status == 200 and b"message_stop" in after.body, "the proxy does not serve after the fuzz"


async def _post_once(reactor: Any, port: int, raw: bytes) -> tuple[Response, bytes]:
    responses = await pipeline(reactor, port, [raw])
    assert responses, "no answer"
    return responses[0], raw


@pytest_twisted.ensureDeferred
async def test_pipelined_requests_are_answered_in_order(harness: Any, reactor: Any, log_errors: Any) -> None:
    """Several requests on one connection, valid and not: one answer each, in order."""
    url = harness.start(upstream_script, max_request_bytes=CAP)
    port = int(url.rsplit(":", 1)[1])
    requests = [
        (http_request(b"{not json"), 400),
        (_valid_stream(), 200),
        (http_request(b"{}", COUNT), 400),
        (b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", 200),
        (b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", 200),
        (http_request(_dumps(cases.base(count_tokens=True)), COUNT), 200),
        (http_request(b"{}", "/nowhere"), 404),
        (b"DELETE /v1/messages HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (http_request(_dumps({**cases.base(), "stream": False})), 200),
        (http_request(_dumps(cases.base()), headers=(("Content-Type", "text/plain"),)), 415),
        (b"GET /api/hello HTTP/1.1\r\nHost: x\r\n\r\n", 200),
    ]
    responses = await pipeline(reactor, port, [r for r, _ in requests])
    assert [r.status for r in responses] == [s for _, s in requests]
    assert json.loads(responses[5].body)["input_tokens"] > 0
    assert json.loads(responses[8].body)["type"] == "message"
    assert len(harness.upstream.received) == 2
    assert not log_errors, log_errors.describe()


@pytest_twisted.ensureDeferred
async def test_body_over_the_cap_is_an_honest_413_before_the_body_is_read(harness: Any, reactor: Any, log_errors: Any) -> None:
    """A Content-Length over MAX_REQUEST_BYTES is answered at once with 413
    request_too_large, without waiting for (or storing) the body."""
    url = harness.start(upstream_script, max_request_bytes=CAP)
    port = int(url.rsplit(":", 1)[1])
    # Only the headers are sent: the answer must not wait for the declared 10 GB.
    head = b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n"
    client = await ClientCreator(reactor, Pipeline, [head], [False]).connectTCP("127.0.0.1", port)
    responses = await client.done.addTimeout(2, reactor)
    assert len(responses) == 1
    response = responses[0]
    assert response.status == 413
    assert response.headers["content-type"] == "application/json"
    assert response.headers["connection"] == "close"
    payload = response.json()
    assert payload["type"] == "error"
    assert payload["error"]["type"] == "request_too_large"
    assert "10000000000" in payload["error"]["message"] and str(CAP) in payload["error"]["message"]
    assert payload["request_id"] == response.headers["request-id"]
    # The same with the body under way, with Expect: 100-continue (no 100 first), chunked.
    big = b" " * (CAP + 1)
    for raw in (
        http_request(big),
        http_request(b"", headers=JSON_HEADERS + (("Expect", "100-continue"), ("Content-Length", str(CAP + 1))), length=False),
        http_request(b"%x\r\n%s\r\n0\r\n\r\n" % (len(big), big), headers=JSON_HEADERS + (("Transfer-Encoding", "chunked"),), length=False),
    ):
        responses = await pipeline(reactor, port, [raw])
        assert [r.status for r in responses] == [413]
        assert b" 100 " not in responses[0].raw_head
        assert responses[0].json()["error"]["type"] == "request_too_large"
    # A body of exactly the cap is accepted.
    body = _dumps(cases.base())
    exact = await pipeline(reactor, port, [http_request(body + b" " * (CAP - len(body)))])
    assert exact[0].status == 200
    assert len(harness.upstream.received) == 1
    assert not log_errors, log_errors.describe()


@pytest_twisted.ensureDeferred
async def test_slow_loris_upload_does_not_hold_up_other_clients(harness: Any, reactor: Any, log_errors: Any) -> None:
    """A client dripping its request a few bytes per 100 ms does not delay anyone else;
    its own request is answered once it is complete."""
    url = harness.start(upstream_script, max_request_bytes=CAP)
    port = int(url.rsplit(":", 1)[1])
    slow_requests = [http_request(b'{"model": "m", "max_tokens": "many", "messages": []}') for _ in range(4)]
    slow_clients = [
        await ClientCreator(reactor, Pipeline, [], []).connectTCP("127.0.0.1", port) for _ in slow_requests
    ]

    async def drip(client: Pipeline, raw: bytes) -> None:
        for at in range(0, len(raw), 5):
            client.transport.write(raw[at : at + 5])  # type: ignore[union-attr]
            await task.deferLater(reactor, 0.1, lambda: None)

    for client, raw in zip(slow_clients, slow_requests):
        client.requests, client.head_flags = [raw], [False]
    drips = [defer.Deferred.fromCoroutine(drip(c, r)) for c, r in zip(slow_clients, slow_requests)]
    await task.deferLater(reactor, 0.3, lambda: None)
    # While they drip: a few hundred other requests, and a valid one, answered at once.
    fast = [Case(f"fast {i}", http_request(b"[]"), frozenset({400})) for i in range(300)]
    began = reactor.seconds()
    await run_cases(reactor, port, fast, per_connection=30, parallel=10)
    valid, _ = await _post_once(reactor, port, _valid_stream())
    elapsed = reactor.seconds() - began
    assert all(case.response is not None and case.response.status == 400 for case in fast)
    assert valid.status == 200
    assert not any(d.called for d in drips), "the slow uploads should still be dripping"
    assert elapsed < 2.0, f"other clients waited {elapsed:.2f} s behind the slow uploads"
    await defer.gatherResults(drips)
    for client in slow_clients:
        responses = await client.done.addTimeout(2, reactor)
        assert [r.status for r in responses] == [400]
    assert not log_errors, log_errors.describe()


def test_the_base_body_is_valid() -> None:
    """The base body the cases break is itself valid, so each case breaks only what it says."""
    from ccproxy.validation import parse_count_tokens_request, parse_messages_request

    parse_messages_request(cases.base())
    parse_count_tokens_request(cases.base(count_tokens=True))

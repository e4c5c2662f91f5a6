"""Logging: one line per request, redacted debug dumps, runtime grammar checks."""

from __future__ import annotations

import json
from typing import Any

import pytest_twisted
from twisted.internet.task import Clock
from twisted.logger import formatEvent

from ccproxy.convert.names import ToolIdMap, ToolNameMap
from ccproxy.convert.stream import StreamConverter
from ccproxy.logs import RequestRecord
from ccproxy.redact import redact_headers, redact_text
from ccproxy.web.clientstream import ClientStream
from tests.fake_upstream import Reply, chunk, text_reply, tool_call_reply
from tests.web.test_integration import BASH_TOOL, body, post

CLIENT_KEY = "client-key-5f3a9c"
UPSTREAM_KEY = "sk-upstream-secret"




def text_of(events: list[dict[str, Any]]) -> str:
    return "\n".join(formatEvent(e) or "" for e in events)


@pytest_twisted.ensureDeferred
async def test_debug_log_of_a_conversation_holds_no_secret(harness: Any, log_events: list[dict[str, Any]]) -> None:
    """Debug mode dumps requests, chunks and events, but never a key or Authorization."""
    url = harness.start(
        [tool_call_reply("Bash", '{"command":"ls"}', fragments=3), text_reply("done"), Reply(status=401, body={"error": {"message": "bad key " + UPSTREAM_KEY}})],
        anthropic_api_key=CLIENT_KEY,
        log_mode="debug",
        upstream_retries=0,
    )
    auth = {"x-api-key": CLIENT_KEY, "authorization": f"Bearer {CLIENT_KEY}"}
    first, _ = await post(url + "/v1/messages", body(stream=True, tools=[BASH_TOOL]), auth)
    second, _ = await post(url + "/v1/messages", body(), auth)
    third, raw = await post(url + "/v1/messages", body(), auth)
    refused, _ = await post(url + "/v1/messages", body(), {"x-api-key": "wrong"})
    assert (first.code, second.code, third.code, refused.code) == (200, 200, 401, 401)
    assert UPSTREAM_KEY not in raw.decode()
    log = text_of(log_events)
    assert "client request" in log and "upstream request" in log and "client events" in log
    assert CLIENT_KEY not in log and UPSTREAM_KEY not in log
    assert "grammar violation" not in log
    request_lines = [e for e in log_events if e.get("ccproxy_request")]
    assert len(request_lines) == 4


@pytest_twisted.ensureDeferred
async def test_request_line_reports_models_status_and_tokens(harness: Any, log_events: list[dict[str, Any]]) -> None:
    """The per-request line names both models, the mode, the status and the usage."""
    url = harness.start([text_reply("hi")])
    await post(url + "/v1/messages", body(stream=True))
    [event] = [e for e in log_events if e.get("ccproxy_request")]
    line = formatEvent(event)
    assert "claude-sonnet-4-5 -> gpt-5" in line
    assert " stream 200 " in line
    assert "in=100 out=20" in line and "ttft=" in line and "total=" in line


@pytest_twisted.ensureDeferred
async def test_a_stream_that_broke_is_logged_with_what_it_cost_until_then(
    harness: Any, log_events: list[dict[str, Any]]
) -> None:
    """Cut after some text, the upstream never sent its usage: the line carries the estimates
    (the prompt was read and the text written all the same), marked as such. An upstream that
    refused the request outright cost nothing, and its line says so."""
    cut = Reply(chunks=[chunk({"role": "assistant", "content": ""}), chunk({"content": "x" * 400})], cut=True)
    refused = Reply(status=400, body={"error": {"message": "bad request"}})
    url = harness.start([cut, refused], upstream_retries=0)
    await post(url + "/v1/messages", body(stream=True))
    await post(url + "/v1/messages", body(stream=True))
    broke, rejected = [formatEvent(e) or "" for e in log_events if e.get("ccproxy_request")]
    assert " stream 200 error in=" in broke and "out=100 " in broke and "(estimated)" in broke, broke
    assert " in=0 " not in broke
    assert " in=0 out=0 " in rejected and "(estimated)" not in rejected, rejected


def test_grammar_violation_is_logged_in_debug_mode(log_events: list[dict[str, Any]]) -> None:
    """A stream that breaks the Anthropic grammar is reported with the request id."""

    class Sink:
        streams = True

        def begin(self) -> None: ...
        def events(self, events: Any) -> None: ...
        def ping(self) -> None: ...
        def end(self) -> None: ...

    converter = StreamConverter("m", "msg_1", "u", "generic", ToolNameMap.from_names([]), ToolIdMap())
    record = RequestRecord("req_test", "m", "u", True, 0.0)
    stream = ClientStream(converter, Sink(), record, Clock(), 15.0, debug_secrets=())
    stream.begin()
    stream.emit([("content_block_delta", {"type": "content_block_delta", "index": 3, "delta": {"type": "text_delta", "text": "x"}})])
    stream.abandon()
    log = text_of(log_events)
    assert "req_test" in log and "grammar violation" in log


def test_redaction_helpers() -> None:
    """Secret headers and key-shaped strings never survive redaction."""
    headers = redact_headers([("Authorization", "Bearer abc"), ("X-Api-Key", "k"), ("Accept", "x")])
    assert headers == {"Authorization": "[redacted]", "X-Api-Key": "[redacted]", "Accept": "x"}
    text = redact_text(json.dumps({"k": "sk-abcdefgh123", "h": "Bearer zzzzzzzz"}), ["mine"])
    assert "sk-abcdefgh123" not in text and "zzzzzzzz" not in text


def _events() -> list[dict[str, Any]]:
    from twisted.logger import LogLevel

    when = 1_764_000_000.25
    return [
        {"log_format": "{line}", "line": "req_1 a -> b json 200 total=0.003s", "ccproxy_request": True,
         "log_namespace": "ccproxy", "log_level": LogLevel.info, "log_time": when},
        {"log_format": "{line}", "line": "req_2 upstream said:\nsecond line {not a field}", "ccproxy_request": True,
         "log_namespace": "ccproxy", "log_level": LogLevel.warn, "log_time": when + 0.5},
        {"log_format": "listening on {port}", "port": 8082, "log_namespace": "ccproxy.service",
         "log_level": LogLevel.info, "log_time": when + 1},
        {"log_format": "{line}", "line": "x", "ccproxy_request": True, "log_system": "custom", "log_time": when + 2},
        {"log_format": "no time"},
    ]


def test_classic_text_writes_what_twisted_writes() -> None:
    """The daemon log's fast formatter gives Twisted's own text, continuation lines included."""
    from twisted.logger import formatEventAsClassicLogText

    from ccproxy.logs import ClassicText

    fast = ClassicText()
    for event in _events():
        assert fast(event) == formatEventAsClassicLogText(event)

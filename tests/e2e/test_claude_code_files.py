"""The real Claude Code CLI through ccproxy: its file tools (text and images), and its recovery from a failing upstream.

The CLI is a blocking subprocess: it runs in a thread (C{deferToThread}) while the reactor
serves the proxy and the scripted upstream in this process.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from tests.claude_cli import find_claude, run_claude
from tests.e2e.test_claude_code import tool_messages
from tests.fake_upstream import Reply, chunk, text_reply, tool_call_reply

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(find_claude() is None, reason="Claude Code CLI not installed (make test installs it)"),
]


@pytest_twisted.ensureDeferred
async def test_claude_code_writes_reads_and_edits_a_file(harness: Any, tmp_path: Path) -> None:
    """Write, Read and Edit, one after the other: each call reaches Claude Code as the tool it
    names with the arguments the model wrote, and each result comes back to the model."""
    work = tmp_path / "work"
    notes = work / "notes.txt"
    calls = [
        ("Write", {"file_path": str(notes), "content": "alpha\nbeta\n"}),
        ("Read", {"file_path": str(notes)}),
        ("Edit", {"file_path": str(notes), "old_string": "beta", "new_string": "gamma"}),
    ]

    def script(body: Any) -> Reply:
        done = len(tool_messages(body))
        if done < len(calls):
            name, arguments = calls[done]
            return tool_call_reply(name, json.dumps(arguments), f"call_file_{done}", fragments=4)
        return text_reply("The notes now say alpha and gamma.")

    url = harness.start(script)
    run = await deferToThread(run_claude, url, "Write the notes, read them back, then fix the second line.",
                              str(tmp_path), allowed_tools="Write Read Edit", timeout=120)
    assert run.ok, (run.stdout, run.stderr)
    assert run.text == "The notes now say alpha and gamma."
    assert notes.read_text() == "alpha\ngamma\n"
    results = tool_messages(harness.upstream.received[-1].body)
    assert [result["tool_call_id"] for result in results] == ["call_file_0", "call_file_1", "call_file_2"]
    read_back = results[1]["content"]
    assert "alpha" in read_back and "beta" in read_back, results
    assert run.result is not None and not run.result.get("permission_denials"), run.stdout


@pytest_twisted.ensureDeferred
async def test_claude_code_recovers_from_an_upstream_that_fails_mid_stream(
    harness: Any, tmp_path: Path, log_events: list[dict[str, Any]]
) -> None:
    """The upstream drops the connection after a few words: ccproxy ends the stream with an
    error event (never a clean end), and Claude Code falls back to a non-streaming request,
    which ccproxy answers from a streamed upstream call."""
    answer = "Here is the whole answer."
    replies = [
        Reply(chunks=[chunk({"role": "assistant", "content": ""}), chunk({"content": "Here is"})], cut=True),
        text_reply(answer),
    ]

    def script(body: Any) -> Reply:
        return replies.pop(0) if replies else text_reply(answer)

    url = harness.start(script)
    run = await deferToThread(run_claude, url, "Answer me.", str(tmp_path), timeout=120)
    assert run.ok, (run.stdout, run.stderr)
    assert run.text == answer
    received = harness.upstream.received
    assert len(received) == 2
    assert received[1].body["messages"] == received[0].body["messages"]  # the same turn again
    lines = [event["line"] for event in log_events if event.get("ccproxy_request")]
    assert len(lines) == 2 and " stream 200 error " in lines[0] and " json 200 in=" in lines[1], lines
    assert "upstream stream ended unexpectedly" in lines[0]
    assert received[1].body["stream"] is True


@pytest_twisted.ensureDeferred
async def test_claude_code_sees_one_answer_when_the_upstream_rate_limits_first(harness: Any, tmp_path: Path) -> None:
    """A 429 with a short Retry-After is retried by ccproxy before anything reached the client:
    Claude Code gets the answer of the second try and never sees the 429."""
    limited = Reply(status=429, headers={"retry-after": "0"},
                    body={"error": {"message": "Rate limit reached", "type": "rate_limit_error"}})
    url = harness.start([limited, text_reply("Answered after one retry.")])
    run = await deferToThread(run_claude, url, "Answer me.", str(tmp_path), timeout=120)
    assert run.ok, (run.stdout, run.stderr)
    assert run.text == "Answered after one retry."
    assert len(harness.upstream.received) == 2


def _png(width: int, height: int) -> bytes:
    """A small RGB PNG (a colour gradient), written by hand: no imaging library needed."""

    def chunk_of(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"".join(bytes([x * 7 % 256, y * 5 % 256, 128]) for x in range(width)) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk_of(b"IHDR", header) + chunk_of(b"IDAT", zlib.compress(rows)) + chunk_of(b"IEND", b"")


@pytest_twisted.ensureDeferred
async def test_claude_code_reads_an_image_and_the_model_gets_it(harness: Any, tmp_path: Path) -> None:
    """Read on a PNG: Claude Code sends the picture inside its tool result; OpenAI takes images
    only in user messages, so the tool message says so and the picture follows, unchanged."""
    home = tmp_path / "home"
    picture = home / "work" / "picture.png"
    picture.parent.mkdir(parents=True)
    picture.write_bytes(_png(32, 16))

    def script(body: Any) -> Reply:
        if tool_messages(body):
            return text_reply("A gradient.")
        return tool_call_reply("Read", json.dumps({"file_path": str(picture)}), "call_picture")

    url = harness.start(script)
    run = await deferToThread(run_claude, url, "What is in picture.png?", str(home), timeout=120, allowed_tools="Read")
    assert run.ok, (run.stdout, run.stderr)
    assert run.text == "A gradient."
    call, result, attached = harness.upstream.received[-1].body["messages"][-3:]
    assert call["tool_calls"][0]["id"] == result["tool_call_id"] == "call_picture"
    assert result["role"] == "tool" and "image attached below" in result["content"]
    assert attached["role"] == "user"
    urls = [part["image_url"]["url"] for part in attached["content"] if part["type"] == "image_url"]
    assert urls == ["data:image/png;base64," + base64.b64encode(picture.read_bytes()).decode()]

"""The real Claude Code, interactive in a terminal: Esc mid-answer stops the upstream at once.

A user who presses Esc stops paying for tokens only if the provider's connection closes: the
CLI aborts its request, ccproxy sees its client leave and closes the upstream connection. The
socket-level tests time ccproxy's part; this one runs the whole chain with the real UI in a
pseudo-terminal (L{tests.claude_tty}), against an upstream that would stream for 30 s. The
request's log line says what the interrupted answer cost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from tests.claude_cli import find_claude
from tests.claude_tty import ESC, ClaudeTTY
from tests.fake_upstream import Reply, chunk, text_reply, usage_chunk

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(find_claude() is None, reason="Claude Code CLI not installed (make test installs it)"),
]

WORDS = 600
INTERVAL = 0.05  # the whole answer would take 30 s


def _long_story(body: Any) -> Reply:
    if not body.get("tools"):  # anything but the conversation's turn (none is expected)
        return text_reply("ok")
    words = [chunk({"content": f"word{i} "}) for i in range(WORDS)]
    return Reply(chunks=[chunk({"role": "assistant", "content": ""}), *words, chunk({}, "stop"), usage_chunk()], interval=INTERVAL)


@pytest_twisted.ensureDeferred
async def test_esc_in_claude_code_closes_the_upstream_connection_at_once(
    harness: Any, tmp_path: Path, log_events: list[dict[str, Any]]
) -> None:
    url = harness.start(_long_story)
    tty = await deferToThread(ClaudeTTY, url, str(tmp_path / "home"), "Tell me a long story.")
    try:
        assert await deferToThread(tty.wait_for, b"word5", 60), tty.tail()  # the answer is on screen
        pressed = tty.press(ESC)
        assert await deferToThread(tty.wait_for, b"Interrupted", 10), tty.tail()
    finally:
        await deferToThread(tty.close)
    upstream = harness.upstream
    requests, ended = len(upstream.received), len(upstream.ended_at)
    assert (requests, ended) == (1, 1), f"{requests} upstream requests, {ended} ended"  # ended: not still streaming
    closed_after = upstream.ended_at[0] - pressed
    assert 0 < closed_after < 0.5, f"the upstream connection closed {closed_after:.3f} s after Esc"
    lines = [event["line"] for event in log_events if event.get("ccproxy_request")]
    assert len(lines) == 1 and " stream 200 cancelled " in lines[0], lines
    # What the interrupted answer cost: the prompt and the words written, estimated.
    assert "(estimated)" in lines[0] and " in=0 " not in lines[0] and " out=0 " not in lines[0], lines

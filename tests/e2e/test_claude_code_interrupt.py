"""The real Claude Code, interactive in a terminal: Esc mid-answer stops the upstream at once.

A user who presses Esc stops paying for tokens only if the provider's connection closes: the
CLI aborts its request, ccproxy sees its client leave and closes the upstream connection. The
socket-level tests time ccproxy's part; this one runs the whole chain with the real UI in a
pseudo-terminal (L{tests.claude_tty}), against an upstream that would stream for 30 s. The
request's log line says what the interrupted answer cost, and the user's next message goes on
from the words the interrupted answer showed.
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
FOLLOW_UP_ANSWER = "Answered-briefly."  # one word: the UI draws words apart


def _long_story(body: Any) -> Reply:
    """A 30 s answer to the first turn; a short one to any later turn."""
    if len(body["messages"]) > 2:  # the first turn: the system message and the user's prompt
        return text_reply(FOLLOW_UP_ANSWER)
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


@pytest_twisted.ensureDeferred
async def test_after_esc_the_next_message_carries_the_interrupted_words(harness: Any, tmp_path: Path) -> None:
    """The user interrupts, then types a new message: Claude Code sends the words it showed as
    the assistant's turn and the new message after an interruption note, and the answer to it
    comes back on screen."""
    url = harness.start(_long_story)
    tty = await deferToThread(ClaudeTTY, url, str(tmp_path / "home"), "Tell me a long story.")
    try:
        assert await deferToThread(tty.wait_for, b"word5", 60), tty.tail()
        tty.press(ESC)
        assert await deferToThread(tty.wait_for, b"Interrupted", 10), tty.tail()
        tty.press(b"Now answer briefly.")
        assert await deferToThread(tty.wait_for, b"briefly.", 10), tty.tail()  # drawn word by word
        tty.press(b"\r")
        assert await deferToThread(tty.wait_for, FOLLOW_UP_ANSWER.encode(), 30), tty.tail()
    finally:
        await deferToThread(tty.close)
    received = harness.upstream.received
    assert len(received) == 2, [r.body["messages"][-1] for r in received]
    assistant, user = received[1].body["messages"][-2:]
    assert assistant["role"] == "assistant" and assistant["content"].startswith("word0 word1 word2 word3 word4 word5")
    assert user["role"] == "user" and "interrupted" in user["content"] and user["content"].endswith("Now answer briefly.")

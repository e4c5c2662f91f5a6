"""The real Claude Code CLI while the model thinks in silence: ccproxy's pings keep it waiting.

Claude Code watches the bytes of a streamed answer and gives the stream up when none came
for a while (five minutes by default); it then asks again without streaming, which starts
the model's work over. A reasoning model that does not stream its reasoning can stay silent
longer than that. ccproxy writes an C{event: ping} whenever nothing was written for
C{PING_INTERVAL}, so the watchdog never fires.

The watchdog's shortest setting (C{CLAUDE_BYTE_STREAM_IDLE_TIMEOUT_MS}, at least 10 s) is
used with an upstream silent for 12 s. The second test is the control: without pings in
that time, the same CLI does give the stream up, so the first one is not passing because
the watchdog is off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from tests.claude_cli import find_claude, run_claude
from tests.fake_upstream import Reply, chunk, text_reply, usage_chunk

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(find_claude() is None, reason="Claude Code CLI not installed (make test installs it)"),
]

WATCHDOG_MS = 10_000  # the CLI clamps the byte-idle timeout to at least 10 s
SILENCE = 12.0
ANSWER = "The answer, after a long think."
FALLBACK = "The answer of a second request."
WATCHDOG_ENV = {"CLAUDE_ENABLE_BYTE_WATCHDOG": "1", "CLAUDE_BYTE_STREAM_IDLE_TIMEOUT_MS": str(WATCHDOG_MS)}


def _thinks_in_silence_then_answers(silent_after: int = 1) -> list[Reply]:
    """The first request: C{silent_after} chunks at once (none: not even the headers), then
    12 s of nothing, then the answer. Any later request (the CLI's fallback) is answered at
    once, with another text."""
    slow = Reply(
        chunks=[
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": ANSWER}),
            chunk({}, "stop"),
            usage_chunk(),
        ],
        silence=SILENCE,
        silent_after=silent_after,
    )
    return [slow, text_reply(FALLBACK)]


def _request_lines(log_events: list[dict[str, Any]]) -> list[str]:
    return [event["line"] for event in log_events if event.get("ccproxy_request")]


@pytest.mark.parametrize("silent_after", [1, 0], ids=["after-the-first-chunk", "before-the-headers"])
@pytest_twisted.ensureDeferred
async def test_pings_keep_claude_code_waiting_through_a_silent_model(
    harness: Any, tmp_path: Path, log_events: list[dict[str, Any]], silent_after: int
) -> None:
    """Before the headers, ccproxy starts the client's stream itself after C{PING_INTERVAL}
    (C{message_start}, then pings) and carries on with the upstream's answer when it comes."""
    url = harness.start(_thinks_in_silence_then_answers(silent_after), ping_interval=1.0)
    run = await deferToThread(run_claude, url, "Think hard, then answer.", str(tmp_path), timeout=120, extra_env=WATCHDOG_ENV)
    assert run.ok, (run.stdout, run.stderr)
    assert run.text == ANSWER
    assert len(harness.upstream.received) == 1  # the stream was never given up
    lines = _request_lines(log_events)
    assert len(lines) == 1 and " stream 200 in=" in lines[0], lines


@pytest_twisted.ensureDeferred
async def test_without_pings_the_same_silence_makes_claude_code_give_the_stream_up(
    harness: Any, tmp_path: Path, log_events: list[dict[str, Any]]
) -> None:
    url = harness.start(_thinks_in_silence_then_answers(), ping_interval=60.0)
    run = await deferToThread(run_claude, url, "Think hard, then answer.", str(tmp_path), timeout=120, extra_env=WATCHDOG_ENV)
    assert run.ok, (run.stdout, run.stderr)
    assert run.text == FALLBACK
    assert len(harness.upstream.received) == 2
    lines = _request_lines(log_events)
    assert len(lines) == 2 and " stream " in lines[0] and "cancelled" in lines[0] and " json 200 " in lines[1], lines

"""Ollama's silent truncation is detected and reported in the log."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.logger import formatEvent

from tests.fake_upstream import Reply, chunk, usage_chunk
from tests.web.test_integration import body, post


@pytest_twisted.ensureDeferred
async def test_ollama_reading_far_less_than_sent_is_warned(harness: Any, log_events: list[dict[str, Any]]) -> None:
    """Ollama reports 2,048 prompt tokens for a ~10k-token prompt: the log says why and what to do."""
    truncated = Reply(chunks=[chunk({"content": "ok"}), chunk({}, "stop"), usage_chunk(prompt=2048, completion=2)])
    url = harness.start([truncated], provider="ollama")
    long = body(messages=[{"role": "user", "content": "the quick brown fox jumps over the lazy dog " * 1000}])
    response, _ = await post(url + "/v1/messages", long)
    assert response.code == 200
    log = "\n".join(formatEvent(e) or "" for e in log_events)
    assert "OLLAMA_CONTEXT_LENGTH" in log and "read 2048 prompt tokens" in log


@pytest_twisted.ensureDeferred
async def test_ollama_reading_the_whole_prompt_is_quiet(harness: Any, log_events: list[dict[str, Any]]) -> None:
    """No warning when the prompt fits."""
    url = harness.start([Reply(chunks=[chunk({"content": "ok"}), chunk({}, "stop"), usage_chunk(prompt=9000, completion=2)])], provider="ollama")
    long = body(messages=[{"role": "user", "content": "the quick brown fox jumps over the lazy dog " * 1000}])
    await post(url + "/v1/messages", long)
    assert "OLLAMA_CONTEXT_LENGTH" not in "\n".join(formatEvent(e) or "" for e in log_events)

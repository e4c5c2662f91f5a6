"""The official anthropic SDK's own accumulator over every converted transcript.

Claude Code builds its message the way the SDK's C{accumulate_event} does; each
provider transcript in tests/fixtures/openai/ must accumulate without error, and where
a non-streaming twin exists, to the same message as that twin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from anthropic.lib.streaming._messages import accumulate_event

from ccproxy.grammar import final_message
from tests.convert.helpers import (
    run_completion,
    run_stream,
    upstream_bytes,
    upstream_json,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "openai"
STREAMS = sorted(p.stem for p in FIXTURES.glob("*.sse"))


def sdk_message(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any] | None:
    """The SDK's snapshot after all events; None when the stream ended in an error."""
    snapshot = None
    buffers: dict[int, bytes] = {}
    for name, payload in events:
        if name == "error":
            return None
        if name == "ping":
            continue
        snapshot = accumulate_event(event=payload, current_snapshot=snapshot, json_bufs=buffers)  # type: ignore[arg-type]
    assert snapshot is not None
    return snapshot.to_dict()  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", STREAMS)
def test_sdk_accumulates_every_converted_stream(name: str) -> None:
    """Each converted stream accumulates in the SDK exactly as our grammar builder says."""
    events = run_stream(upstream_bytes(name + ".sse"))
    message = sdk_message(events)
    if message is None:
        assert events[-1][0] == "error"
        return
    ours = final_message(events)
    assert message["content"] == ours["content"]
    assert message["stop_reason"] == ours["stop_reason"]
    assert message["usage"]["output_tokens"] == ours["usage"]["output_tokens"]


@pytest.mark.parametrize("name", [s for s in STREAMS if (FIXTURES / (s + ".json")).exists()])
def test_sdk_stream_equals_non_streaming_twin(name: str) -> None:
    """The SDK's message from the stream equals the converted non-streaming completion."""
    streamed = sdk_message(run_stream(upstream_bytes(name + ".sse")))
    assert streamed is not None
    twin = final_message(run_completion(upstream_json(name + ".json")))
    for block in streamed["content"] + twin["content"]:
        block.pop("signature", None)  # carriers may differ in key order; decoded elsewhere
    assert streamed["content"] == twin["content"]
    assert streamed["stop_reason"] == twin["stop_reason"]

"""The relay converts a burst of upstream events a turn at a time (deterministic, task.Clock).

Twisted sends what a protocol wrote only when the reactor next polls; the relay therefore
converts at most EVENTS_PER_TURN events per reactor turn, pausing the upstream socket while
the rest wait, so a client's first token never waits for the conversion of the whole burst.
What one turn converts beyond the first few events goes out in one write at the turn's end,
still before the reactor polls: nothing reaches the client later for it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest_twisted
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from ccproxy.convert.names import ToolIdMap, ToolNameMap
from ccproxy.convert.stream import Event, StreamConverter
from ccproxy.grammar import check_events, final_message
from ccproxy.logs import RequestRecord
from ccproxy.providers import profile_named
from ccproxy.web.clientstream import ClientStream
from ccproxy.web.streaming import _WATCH_AFTER, EVENTS_PER_TURN, Relay
from tests.fake_upstream import Reply, chunk, usage_chunk
from tests.web.test_integration import body, post, sse_events

WORDS = 100  # content chunks in the burst: a few turns' worth


class ReactorClock(Clock):
    """A Clock that runs, per turn, only the calls due when the turn began, as the reactor
    does (C{Clock.advance} would also run the calls those calls make)."""

    def reactor_turn(self) -> None:
        due = [call for call in self.calls if call.getTime() <= self.seconds()]
        for call in due:
            if call in self.calls:  # not cancelled by an earlier call of this turn
                self.calls.remove(call)
                call.called = 1
                call.func(*call.args, **call.kw)


class RecordingSink:
    """A sink that keeps what the client would receive, one list per write."""

    def __init__(self, streams: bool = True) -> None:
        self.streams = streams
        self.writes: list[list[Event]] = []
        self.ended = 0

    def begin(self) -> None:
        pass

    def events(self, events: list[Event]) -> None:
        self.writes.append(list(events))

    def ping(self) -> None:
        self.writes.append([("ping", {"type": "ping"})])

    def end(self) -> None:
        self.ended += 1

    @property
    def names(self) -> list[str]:
        return [name for write in self.writes for name, _ in write]

    @property
    def text(self) -> str:
        return "".join(
            payload["delta"].get("text", "")
            for write in self.writes
            for name, payload in write
            if name == "content_block_delta"
        )


class FakeRequest:
    """What the relay uses of the client request: producer registration."""

    channel = object()

    def __init__(self) -> None:
        self.producers: list[tuple[Any, bool]] = []
        self.unregistered = 0

    def registerProducer(self, producer: Any, streaming: bool) -> None:  # noqa: N802
        self.producers.append((producer, streaming))

    def unregisterProducer(self) -> None:  # noqa: N802
        self.unregistered += 1


class UpstreamTransport:
    """The upstream body's transport: records pause, resume and stop."""

    def __init__(self) -> None:
        self.paused = False
        self.stopped = False

    def pauseProducing(self) -> None:  # noqa: N802
        self.paused = True

    def resumeProducing(self) -> None:  # noqa: N802
        self.paused = False

    def stopProducing(self) -> None:  # noqa: N802
        self.stopped = True


def relay_for(sink: RecordingSink, clock: ReactorClock) -> tuple[Relay, UpstreamTransport]:
    profile = profile_named("generic")
    converter = StreamConverter(
        model="claude-sonnet-4-5",
        message_id="msg_test",
        upstream_model="fake-model",
        profile=profile.name,
        names=ToolNameMap.from_names([]),
        ids=ToolIdMap(profile.id_rule),
    )
    record = RequestRecord("req_test", "claude-sonnet-4-5", "fake-model", sink.streams, clock.seconds())
    client = ClientStream(converter, sink, record, clock, ping_interval=15.0)
    relay = Relay(FakeRequest(), client, clock, idle_timeout=600.0)  # type: ignore[arg-type]
    transport = UpstreamTransport()
    relay.makeConnection(transport)  # type: ignore[arg-type]
    return relay, transport


def events() -> list[bytes]:
    """A whole answer, one SSE event per item: role, WORDS words, finish, usage, [DONE]."""
    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": f"w{i} "}) for i in range(WORDS)]
    chunks += [chunk({}, "stop"), usage_chunk()]
    return [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]


def burst() -> bytes:
    """The whole answer in one piece."""
    return b"".join(events())


def everything() -> str:
    return "".join(f"w{i} " for i in range(WORDS))


def turn(clock: ReactorClock) -> None:
    """Until the relay's next conversion: it waits for the reactor turn after the next one,
    so the reactor polls (and sends what was written) in between."""
    clock.reactor_turn()
    clock.reactor_turn()


def drain(relay: Relay, clock: ReactorClock) -> int:
    """Turn until nothing waits and all is delivered; each turn converts a share at most, and
    writes it in a few writes at most. The number of turns."""
    sink: RecordingSink = relay._client._sink  # type: ignore[assignment]
    turns = 0
    while relay._queue:
        waiting, before = len(relay._queue), len(sink.writes)
        turn(clock)
        assert waiting - len(relay._queue) == min(waiting, EVENTS_PER_TURN), "a turn converted too much or nothing"
        assert len(sink.writes) - before <= _WATCH_AFTER, "a turn's events were not written together"
        turns += 1
    clock.reactor_turn()  # the end of the last turn delivers what it converted
    assert not relay.transport.paused  # type: ignore[union-attr]
    return turns


def test_a_burst_reaches_the_client_a_turn_at_a_time() -> None:
    sink, clock = RecordingSink(), ReactorClock()
    relay, upstream = relay_for(sink, clock)
    relay.dataReceived(burst())
    assert upstream.paused, "the upstream socket waits while events are queued"
    clock.reactor_turn()  # the end of the turn: what it converted goes out before the reactor polls
    first = len(sink.names)
    assert 2 < first <= 2 + EVENTS_PER_TURN  # message_start and ping, then one turn's worth
    assert sink.names[0] == "message_start" and "content_block_delta" in sink.names
    assert len(sink.writes) <= 1 + _WATCH_AFTER < first, "the turn's events were not written together"
    clock.reactor_turn()  # the reactor has polled; now the next share is converted
    assert len(sink.names) <= first + EVENTS_PER_TURN
    clock.reactor_turn()
    assert len(sink.names) > first
    turns = drain(relay, clock)
    assert turns >= len(events()) // EVENTS_PER_TURN - 1
    assert sink.text == everything() and sink.ended == 0
    relay.connectionLost(Failure(Exception("done")))
    assert sink.names[-1] == "message_stop" and sink.ended == 1
    assert clock.getDelayedCalls() == []


def test_a_burst_of_http_chunks_in_one_turn_is_sliced_too() -> None:
    """twisted.web's client hands over each HTTP chunk on its own: one event per call."""
    sink, clock = RecordingSink(), ReactorClock()
    relay, upstream = relay_for(sink, clock)
    for data in events():
        relay.dataReceived(data)
    assert len(sink.writes) <= 1 + EVENTS_PER_TURN and upstream.paused
    drain(relay, clock)
    assert sink.text == everything()


def test_a_paced_stream_is_converted_as_it_comes() -> None:
    """One event per reactor turn: nothing waits, the upstream is never paused."""
    sink, clock = RecordingSink(), ReactorClock()
    relay, upstream = relay_for(sink, clock)
    words = 0
    for data in events():
        relay.dataReceived(data)
        words += b'"content": "w' in data
        assert not upstream.paused
        clock.reactor_turn()  # before the reactor polls again
        assert sink.text.count("w") == words, "an event waited"
    assert sink.text == everything()
    relay.connectionLost(Failure(Exception("done")))
    assert sink.ended == 1 and clock.getDelayedCalls() == []


def test_the_end_of_the_upstream_body_waits_for_the_queued_events() -> None:
    sink, clock = RecordingSink(), ReactorClock()
    relay, upstream = relay_for(sink, clock)
    relay.dataReceived(burst())
    relay.connectionLost(Failure(Exception("the body ended in the same read")))
    assert sink.ended == 0 and "message_stop" not in sink.names
    while sink.ended == 0:
        turn(clock)
    assert sink.text == everything()
    assert sink.names[-2:] == ["message_delta", "message_stop"] and sink.names.count("message_stop") == 1
    assert clock.getDelayedCalls() == []


def test_a_slow_client_stops_the_conversion_until_it_drains() -> None:
    sink, clock = RecordingSink(), ReactorClock()
    relay, upstream = relay_for(sink, clock)
    relay.dataReceived(burst())
    relay.pauseProducing()
    clock.reactor_turn()  # what the turn converted before the pause still goes out
    held = len(sink.writes)
    for _ in range(5):
        turn(clock)
    assert len(sink.writes) == held and upstream.paused
    relay.resumeProducing()
    assert len(sink.writes) > held
    while upstream.paused:
        turn(clock)
    clock.reactor_turn()  # the end of the last turn delivers what it converted
    assert sink.text == everything()
    relay.pauseProducing()
    assert upstream.paused
    relay.resumeProducing()
    assert not upstream.paused


def test_a_client_that_leaves_mid_burst_gets_nothing_more_and_the_upstream_closes() -> None:
    sink, clock = RecordingSink(), ReactorClock()
    relay, upstream = relay_for(sink, clock)
    relay.dataReceived(burst())
    relay.connectionLost(Failure(Exception("the body ended in the same read")))
    written = len(sink.writes)
    relay.stopProducing()
    assert upstream.stopped
    for _ in range(5):
        turn(clock)
    assert len(sink.writes) == written and sink.ended == 0
    assert relay._request.unregistered == 1  # type: ignore[attr-defined]
    assert clock.getDelayedCalls() == []


def test_a_broken_chunk_mid_turn_ends_the_stream_after_what_was_converted() -> None:
    """The error event follows the events the turn converted before it (held or not)."""
    sink, clock = RecordingSink(), ReactorClock()
    relay, upstream = relay_for(sink, clock)
    good = events()[: 2 * _WATCH_AFTER]
    relay.dataReceived(b"".join(good) + b"data: {not json\n\n" + b"".join(events()[2 * _WATCH_AFTER :]))
    assert upstream.stopped
    relay.connectionLost(Failure(Exception("closed by the proxy")))
    assert sink.ended == 1
    assert sink.names[-1] == "error" and sink.names.count("error") == 1
    assert sink.text == "".join(f"w{i} " for i in range(2 * _WATCH_AFTER - 1))  # after the role chunk
    assert clock.getDelayedCalls() == []


def test_held_events_go_out_before_a_ping_and_before_the_end() -> None:
    sink, clock = RecordingSink(), ReactorClock()
    relay, _ = relay_for(sink, clock)
    client = relay._client
    client.hold()
    client.emit([("content_block_start", {"type": "content_block_start", "index": 0,
                                          "content_block": {"type": "text", "text": ""}})])
    assert sink.names == ["message_start", "ping"], "a held event was written"
    clock.advance(15.0)  # a ping is due
    assert sink.names == ["message_start", "ping", "content_block_start", "ping"]
    client.hold()
    client.emit([("content_block_stop", {"type": "content_block_stop", "index": 0})])
    client.end()
    assert sink.names[-1] == "content_block_stop" and sink.ended == 1


def test_a_json_client_gets_the_whole_burst_at_once() -> None:
    """A non-streaming client is answered at the end anyway: no turns to wait for."""
    sink, clock = RecordingSink(streams=False), ReactorClock()
    relay, upstream = relay_for(sink, clock)
    relay.dataReceived(burst())
    assert sink.text == everything() and not upstream.paused
    relay.connectionLost(Failure(Exception("done")))
    assert sink.ended == 1 and sink.names[-1] == "message_stop"


@pytest_twisted.ensureDeferred
async def test_a_long_burst_through_real_sockets_arrives_whole_and_in_order(harness: Any) -> None:
    """Ten turns' worth of events written at once by the upstream: a valid stream, every word."""
    words = [f"w{i} " for i in range(10 * EVENTS_PER_TURN)]
    url = harness.start([Reply(chunks=[chunk({"content": w}) for w in words] + [chunk({}, "stop"), usage_chunk()])])
    response, raw = await post(url + "/v1/messages", body(stream=True))
    assert response.code == 200
    events = sse_events(raw)
    check_events(events)
    message = final_message(events)
    assert message["content"] == [{"type": "text", "text": "".join(words)}]
    assert message["stop_reason"] == "end_turn"

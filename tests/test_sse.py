"""Tests for L{ccproxy.sse}: the incremental SSE parser and the event encoder (PROTOCOL.md B.5, H.6 step 3, H.11 item 11)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccproxy.sse import SSEError, SSEEvent, SSEParser, encode_event


def parse(*pieces: bytes) -> list[SSEEvent]:
    """Every event in C{pieces}, fed as separate reads, including what the end of the stream releases."""
    parser = SSEParser()
    events = [event for piece in pieces for event in parser.feed(piece)]
    return events + parser.close()


def datas(*pieces: bytes) -> list[str]:
    return [event.data for event in parse(*pieces)]


# Line ends and framing


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_h11_11_line_ends(newline: bytes) -> None:
    """LF, CRLF and lone CR all end lines."""
    raw = b"data: one" + newline + newline + b"data: two" + newline + newline
    assert datas(raw) == ["one", "two"]


def test_h11_11_crlf_split_between_reads() -> None:
    """A CR at the end of one read and its LF at the start of the next make one line end, not two."""
    assert datas(b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n") == ["a", "b"]


def test_h11_11_cr_then_other_text_in_the_next_read() -> None:
    """A lone CR at the end of a read is a line end when the next read does not start with LF."""
    assert datas(b"data: a\r", b"\rdata: b\r\r") == ["a", "b"]


def test_h11_11_data_without_space_and_with_two_spaces() -> None:
    """C{data:x} is C{x}; only one space after the colon is removed."""
    assert datas(b"data:x\n\ndata:  y\n\n") == ["x", " y"]


def test_h11_11_comments_are_skipped() -> None:
    """C{: OPENROUTER PROCESSING} and C{: keep-alive} lines are not events and do not end one."""
    assert datas(b": OPENROUTER PROCESSING\n\ndata: {\"a\":1}\n: keep-alive\n\n") == ['{"a":1}']


def test_h11_11_event_and_id_lines() -> None:
    """C{event:} names the event; C{id:} and C{retry:} are ignored; unknown fields too."""
    events = parse(b"event: message\nid: 7\nretry: 1000\nfoo: bar\ndata: x\n\ndata: y\n\n")
    assert events == [SSEEvent("message", "x"), SSEEvent(None, "y")]


def test_h11_11_keep_alive_blank_lines() -> None:
    """Extra blank lines dispatch nothing."""
    assert datas(b"\n\n\ndata: a\n\n\n\n\ndata: b\n\n\n") == ["a", "b"]


def test_multiple_data_lines_join_with_newline() -> None:
    """Several C{data:} lines in one event join with C{\\n}."""
    assert datas(b"data: a\ndata: b\ndata:\n\n") == ["a\nb\n"]


def test_h11_11_empty_data_is_not_an_event() -> None:
    """An event whose data is empty (C{data:} alone, a keep-alive some servers send) is not dispatched (WHATWG)."""
    assert datas(b"data:\n\ndata: \n\nevent: ping\ndata:\n\ndata: x\n\n") == ["x"]


def test_field_without_colon() -> None:
    """A line C{data} with no colon is a data field with an empty value."""
    assert datas(b"data\ndata: x\n\n") == ["\nx"]


def test_events_need_their_blank_line() -> None:
    """An event is dispatched only once its blank line arrives."""
    parser = SSEParser()
    assert parser.feed(b"data: a\n") == []
    assert parser.feed(b"\n") == [SSEEvent(None, "a")]


def test_h11_11_close_releases_an_unterminated_last_event() -> None:
    """A body that ends without the final blank line (C{data: [DONE]} with no newline) still yields its event."""
    assert datas(b"data: a\n\ndata: [DONE]") == ["a", "[DONE]"]
    assert datas(b"data: [DONE]\n") == ["[DONE]"]
    assert datas(b"data: [DONE]\r") == ["[DONE]"]
    assert parse(b"") == [] and parse(b": only a comment") == []


def test_utf8_split_inside_a_character() -> None:
    """A multi-byte character cut between reads decodes whole."""
    raw = "data: é🙂\n\n".encode()
    cut = raw.index("🙂".encode()) + 2
    assert datas(raw[:cut], raw[cut:]) == ["é🙂"]


def test_invalid_utf8_is_replaced() -> None:
    """Bytes that are not UTF-8 never raise; they become U+FFFD."""
    assert datas(b"data: \xff\n\n") == ["\ufffd"]


@pytest.mark.parametrize(
    "reads",
    [
        [b"data: 0123456789ab\n"],  # one line
        [b"data: 0123456789ab"],  # an unterminated line
        [b"data: 01234\n", b"data: 56789ab\n"],  # the lines of one event
        [b"data: 0123456789ab\n\n"],  # a whole event in one read (the parser's short path)
        [b": 0123456\n", b"data: 0123\n\n"],  # comment lines count until the next event
    ],
)
def test_size_cap(reads: list[bytes]) -> None:
    """An event or an unterminated line beyond the cap is an L{SSEError}, not unbounded memory."""
    parser = SSEParser(max_event_bytes=10)
    for read in reads[:-1]:
        parser.feed(read)  # within the cap so far
    with pytest.raises(SSEError):
        parser.feed(reads[-1])


def test_empty_data_in_a_whole_event_read_dispatches_nothing() -> None:
    assert datas(b"data: \n\n", b"data: x\n\n") == ["x"]


STREAM = st.lists(
    st.tuples(st.none() | st.sampled_from(["message", "error"]),
              st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]), min_size=1,
                      max_size=30).filter(lambda value: not value.startswith(" "))),
    max_size=8,
)


@settings(max_examples=100, deadline=None)
@given(events=STREAM, newline=st.sampled_from(["\n", "\r\n", "\r"]), space=st.booleans(), data=st.data())
def test_h11_11_any_split_gives_the_same_events(
    events: list[tuple[str | None, str]], newline: str, space: bool, data: st.DataObject
) -> None:
    """Whatever the line ends and however the bytes are cut into reads, the same events come out."""
    text = ": comment" + newline
    for name, value in events:
        if name:
            text += f"event: {name}{newline}"
        text += f"data:{' ' if space else ''}{value}{newline}{newline}"
    raw = text.encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=20)))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)])]
    assert parse(*pieces) == [SSEEvent(name, value) for name, value in events]


@settings(max_examples=100, deadline=None)
@given(events=STREAM, comments=st.lists(st.booleans(), max_size=8))
def test_one_event_per_read_gives_the_same_events_as_byte_by_byte(
    events: list[tuple[str | None, str]], comments: list[bool]
) -> None:
    """Reads holding exactly one event (the usual upstream framing, parsed on a shorter path)
    give what the same bytes fed one at a time give, with names and comments in between."""
    reads = []
    for number, (name, value) in enumerate(events):
        if number < len(comments) and comments[number]:
            reads.append(b": keep-alive\n")
        reads.append((f"event: {name}\n" if name else "").encode() + f"data: {value}\n\n".encode())
    raw = b"".join(reads)
    assert parse(*reads) == parse(*[raw[i : i + 1] for i in range(len(raw))])
    assert parse(*reads) == [SSEEvent(name, value) for name, value in events]


# Encoder


def test_encode_event_shape() -> None:
    """C{event:} line, one compact C{data:} line, blank line (what Claude Code's SDK dispatches on, B.5)."""
    raw = encode_event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                               "delta": {"type": "text_delta", "text": "é\n✓"}})
    assert raw == ('event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
                   '"delta":{"type":"text_delta","text":"é\\n✓"}}\n\n').encode()


def test_encode_event_round_trips_through_the_parser() -> None:
    """What the encoder writes, the parser reads back."""
    payload = {"type": "ping"}
    assert parse(encode_event("ping", payload)) == [SSEEvent("ping", json.dumps(payload, separators=(",", ":")))]


def test_encode_event_lone_surrogate() -> None:
    """Text with a lone surrogate (JSON allows C{\\ud83d}) is written as its JSON escape instead of failing."""
    raw = encode_event("content_block_delta", {"text": "half \ud83d emoji"})
    assert b"\\ud83d" in raw
    [event] = parse(raw)
    assert json.loads(event.data) == {"text": "half \ud83d emoji"}

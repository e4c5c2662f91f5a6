"""Tests for L{ccproxy.tokens} (the estimator, the request walk, the optional exact counter; PROTOCOL.md D.1, H.8)
and L{ccproxy.media} (image and PDF costs)."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccproxy import estimator, media, token_parts, tokens
from ccproxy.tokens import TokenCounter, estimate_text_tokens

CORPUS = sorted((Path(__file__).parent / "fixtures" / "tokens").glob("*.json"))
# Measured worst case on the corpus is 6.2% (json__tool_io); see bench/tokens_accuracy.py.
TOLERANCE = 0.10


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def exact() -> TokenCounter:
    """The o200k_base counter; tests using it are skipped when bpe-openai is not installed."""
    pytest.importorskip("bpe_openai")
    counter = TokenCounter.load()
    assert counter.exact
    return counter


def reference_estimate(text: str) -> int:
    """The estimator written as a plain per-character loop over the same tables."""
    if not text:
        return 0
    classes = text.encode("utf-8", "surrogatepass").translate(estimator._CLASSES, estimator._UTF8_CONTINUATION)
    total, previous = 0, 0
    for cls in classes:
        total += estimator._WEIGHTS[(previous ^ cls) << 4 | cls]
        previous = cls
    return max(1, (total + estimator._SCALE // 2) // estimator._SCALE)


# Accuracy against o200k_base


def test_corpus_is_present() -> None:
    """The corpus has every category the issue asks for."""
    categories = {path.name.split("__")[0] for path in CORPUS}
    assert {"english", "json", "python", "typescript", "shell", "cjk", "mixed", "session"} <= categories


@pytest.mark.parametrize("path", CORPUS, ids=lambda path: path.stem)
def test_estimate_close_to_o200k(exact: TokenCounter, path: Path) -> None:
    """On every corpus request, the estimator is within TOLERANCE of the exact o200k_base count."""
    body = load(path)
    expected = exact.count_request(body)
    estimated = TokenCounter().count_request(body)
    assert abs(estimated - expected) <= TOLERANCE * expected, (estimated, expected)


def test_exact_counts_known_strings(exact: TokenCounter) -> None:
    """The exact counter is o200k_base (these counts are the tokenizer's own)."""
    assert exact.count_text("hello world") == 2
    assert exact.count_text("") == 0


def test_exact_counts_special_token_text(exact: TokenCounter) -> None:
    """Text that looks like a special token is counted as text, not refused."""
    assert exact.count_text("before <|endoftext|> after") > 3


def test_exact_counts_past_the_library_limits(exact: TokenCounter) -> None:
    """Over a million characters (bpe-openai refuses that in one call) is counted in chunks, without drift."""
    line = "The quick brown fox jumps over the lazy dog.\n"
    text = line * 25_000
    assert len(text) > 1_000_000
    assert exact.count_text(text) == exact.count_text(line) * 25_000


def test_exact_survives_lone_surrogates(exact: TokenCounter) -> None:
    """JSON can carry a lone surrogate ("\\ud800"); counting it must not raise."""
    assert exact.count_text("abc\ud800def") >= 2


# The estimator


def test_estimate_empty() -> None:
    """An empty string has no tokens."""
    assert estimate_text_tokens("") == 0


@given(st.text(min_size=1))
def test_estimate_never_zero(text: str) -> None:
    """Any non-empty text, even one space, is at least one token."""
    assert estimate_text_tokens(text) >= 1


@given(st.text(), st.text())
def test_estimate_monotone_when_appending(head: str, tail: str) -> None:
    """Appending text never lowers the estimate."""
    assert estimate_text_tokens(head + tail) >= estimate_text_tokens(head)


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
@settings(max_examples=300)
def test_estimate_matches_reference_loop(text: str) -> None:
    """The big-int and Adler-32 tricks compute exactly what a per-character loop computes."""
    assert estimate_text_tokens(text) == reference_estimate(text)


@pytest.mark.parametrize(
    "text",
    ["a", "Hello, World!", "x" * 200_000, "你好，世界。日本語のテキスト", "🚀🚀 done ✅", "\ud800 lone", "é" * 70_000],
)
def test_estimate_matches_reference_on_edges(text: str) -> None:
    """Long runs (many Adler-32 chunks), non-ASCII and surrogates agree with the reference loop."""
    assert estimate_text_tokens(text) == reference_estimate(text)


_JOIN_TEXTS = st.lists(
    st.one_of(st.sampled_from(["\n", "a", "A1", "\n\nx\n", "hello world\n", "  ", "日本", "é"]), st.text(min_size=1)),
    max_size=8,
)


def _summed(summaries: estimator.Summaries, texts: list[str]) -> int:
    total = estimator.NO_TEXT
    for text in texts:
        total = estimator.joined(total, summaries(text))
    return estimator.summary_tokens(total)


@given(_JOIN_TEXTS, _JOIN_TEXTS)
def test_remembered_summaries_join_to_the_estimate_of_the_join(first: list[str], second: list[str]) -> None:
    """Joining remembered per-text summaries gives exactly the estimate of the joined text, also when
    the same texts come again in another order (as a conversation grows turn by turn)."""
    summaries = estimator.Summaries()
    for texts in (first, second, first + second, second + first):
        assert _summed(summaries, texts) == estimate_text_tokens("\n".join(texts))


def test_summaries_memo_is_bounded() -> None:
    summaries = estimator.Summaries(limit=3)
    texts = [f"text number {n}" for n in range(10)]
    assert _summed(summaries, texts) == estimate_text_tokens("\n".join(texts))
    assert len(summaries._memo) <= 3


def test_counter_counts_a_request_the_same_twice() -> None:
    """The second count of a request (all texts remembered) equals the first and a fresh counter's."""
    body = {"system": "Be brief.", "messages": [{"role": "user", "content": "hello\nworld"}],
            "tools": [{"name": "Bash", "description": "Run it", "input_schema": {"type": "object"}}]}
    counter = TokenCounter()
    assert counter.count_request(body) == counter.count_request(body) == TokenCounter().count_request(body)


def test_estimate_scales_with_length() -> None:
    """Ten copies of a paragraph cost about ten times as much."""
    paragraph = "Reservations expire after fifteen minutes unless the payment is confirmed.\n"
    one = estimate_text_tokens(paragraph)
    assert 9 * one <= estimate_text_tokens(paragraph * 10) <= 11 * one


def test_byte_sum_does_not_wrap() -> None:
    """A long run of the largest weight sums exactly (chunks stay under the Adler-32 modulus)."""
    data = bytes([max(estimator._WEIGHTS)]) * 100_003
    assert estimator._byte_sum(data) == sum(data)


# Walking a request body


def test_all_block_types() -> None:
    """Every block type in the corpus file that has them is counted without raising."""
    body = load(Path(__file__).parent / "fixtures" / "tokens" / "mixed__all_block_types.json")
    assert TokenCounter().count_request(body) > 0


def test_all_block_types_exact(exact: TokenCounter) -> None:
    """The same with the exact counter."""
    body = load(Path(__file__).parent / "fixtures" / "tokens" / "mixed__all_block_types.json")
    assert exact.count_request(body) > 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"messages": None},
        {"messages": "hi"},
        {"messages": [None, 3, "x", {"role": "user"}]},
        {"messages": [{"role": "user", "content": [None, 1, {"type": None}, {"text": "no type"}]}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": None}]}]},
        {"messages": [{"role": "user", "content": [{"type": "image", "source": "nope"}]}]},
        {"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "@@@"}}]}]},
        {"messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "base64", "data": 7}}]}]},
        {"messages": [{"role": "user", "content": [{"type": "tool_result", "content": {"odd": "shape"}}]}]},
        {"system": [None, {"type": "text"}], "tools": [None, {"name": 5}, {"input_schema": {"x": {1, 2}}}]},
    ],
)
def test_malformed_bodies_count(body: dict[str, Any]) -> None:
    """Malformed parts are skipped; the count is still at least 1."""
    assert TokenCounter().count_request(body) >= 1


def test_deep_nesting_stops() -> None:
    """Nested tool_result/document content deeper than the limit is ignored rather than recursed into."""
    content: Any = "deep"
    for _ in range(5000):
        content = [{"type": "tool_result", "content": content}]
    assert TokenCounter().count_request({"messages": [{"role": "user", "content": content}]}) >= 1


def counting_chars() -> TokenCounter:
    """A counter whose 'tokens' are characters, so tests can see exactly which text was counted."""
    return TokenCounter(len)


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def test_text_counted_with_framing() -> None:
    """A message's text is counted, plus the reply priming and per-message framing."""
    counter = counting_chars()
    body = {"messages": [{"role": "user", "content": "hello"}]}
    assert counter.count_request(body) == token_parts.REPLY_TOKENS + token_parts.MESSAGE_TOKENS + len("hello")


def test_system_string_and_blocks_agree() -> None:
    """A system string and the same text as one block count the same; the billing block is not sent upstream."""
    counter = counting_chars()
    message = [{"role": "user", "content": "hi"}]
    as_string = counter.count_request({"system": "Be brief.", "messages": message})
    as_blocks = counter.count_request({
        "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=1"},
                   {"type": "text", "text": "Be brief."}],
        "messages": message,
    })
    assert as_string == as_blocks


def test_tool_use_counts_name_and_compact_json() -> None:
    """A tool call costs its name, its input as compact JSON (as sent upstream) and a wrapper."""
    counter = counting_chars()
    tool_input = {"command": "ls -la", "timeout": 5}
    body = {"messages": [{"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": tool_input}]}]}
    arguments = json.dumps(tool_input, separators=(",", ":"))
    expected = token_parts.REPLY_TOKENS + token_parts.MESSAGE_TOKENS + token_parts.TOOL_CALL_TOKENS + len("Bash\n" + arguments)
    assert counter.count_request(body) == expected


def test_tool_result_thinking_and_documents_count_their_text() -> None:
    """Each text-bearing block adds its text."""
    counter = counting_chars()
    base = counter.count_request({"messages": [user({"type": "text", "text": "x"})]})
    cases: list[tuple[dict[str, Any], str]] = [
        ({"type": "tool_result", "tool_use_id": "t", "content": "output"}, "output"),
        ({"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "output"}]}, "output"),
        ({"type": "thinking", "thinking": "hmm", "signature": "sig"}, "hmm"),
        ({"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"}}, "doc"),
        ({"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "doc"}]}}, "doc"),
        ({"type": "search_result", "source": "s", "title": "t", "content": [{"type": "text", "text": "c"}]}, "s\nt\nc"),
        ({"type": "mid_conv_system", "content": [{"type": "text", "text": "sys"}]}, "sys"),
    ]
    for block, text in cases:
        count = counter.count_request({"messages": [user({"type": "text", "text": "x"}, block)]})
        framing = token_parts.MESSAGE_TOKENS if block["type"] == "tool_result" else 0
        assert count == base + framing + len("\n" + text), block


def test_redacted_thinking_is_free() -> None:
    """Opaque redacted thinking data is not text any upstream reads."""
    counter = counting_chars()
    plain = {"messages": [{"role": "assistant", "content": [{"type": "text", "text": "x"}]}]}
    redacted = {"messages": [{"role": "assistant", "content": [
        {"type": "redacted_thinking", "data": "E" * 500}, {"type": "text", "text": "x"}]}]}
    assert counter.count_request(redacted) == counter.count_request(plain)


def test_deferred_tools_count_only_once_referenced() -> None:
    """A defer_loading tool is sent upstream only after a tool_reference (or a call) names it (PROTOCOL.md H.3)."""
    counter = counting_chars()
    tool = {"name": "NotebookEdit", "description": "Edit a notebook", "defer_loading": True,
            "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}
    plain = {"messages": [user({"type": "text", "text": "x"})], "tools": [tool]}
    assert counter.count_request(plain) == counter.count_request({**plain, "tools": []})
    referenced = {**plain, "messages": [user({"type": "tool_result", "tool_use_id": "t", "content": [
        {"type": "tool_reference", "tool_name": "NotebookEdit"}]})]}
    unreferenced = {**referenced, "tools": []}
    assert counter.count_request(referenced) > counter.count_request(unreferenced) + len("Edit a notebook")


def test_tools_count_name_description_and_schema() -> None:
    """Each tool costs its name, description, schema JSON and a wrapper."""
    counter = counting_chars()
    schema = {"type": "object", "properties": {"q": {"type": "string"}}}
    message = [{"role": "user", "content": "x"}]
    without = counter.count_request({"messages": message})
    with_tool = counter.count_request({"messages": message, "tools": [
        {"name": "Search", "description": "Find things", "input_schema": schema}]})
    schema_json = json.dumps(schema, separators=(",", ":"))
    assert with_tool - without == token_parts.TOOL_TOKENS + len("\nSearch\nFind things\n" + schema_json)


def test_server_blocks_cost_a_little() -> None:
    """Server tool results (encrypted content) count as a small fixed amount, not by their size."""
    counter = counting_chars()
    block = {"type": "web_search_tool_result", "tool_use_id": "s", "content": [
        {"type": "web_search_result", "encrypted_content": "E" * 10_000}]}
    body = {"messages": [{"role": "assistant", "content": [block]}]}
    assert counter.count_request(body) == token_parts.REPLY_TOKENS + token_parts.MESSAGE_TOKENS + token_parts.OPAQUE_BLOCK_TOKENS


def test_never_zero() -> None:
    """Even an empty body reports at least one token (0 breaks Claude Code's auto-compact, PROTOCOL.md H.8)."""
    assert TokenCounter(lambda text: 0).count_request({}) >= 1


# Images and PDFs


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png(width: int, height: int) -> str:
    return b64(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", width, height) + bytes(40))


def jpeg(width: int, height: int) -> str:
    app1 = b"\xff\xe1" + struct.pack(">H", 2 + 30_000) + bytes(30_000)  # a large EXIF segment first
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + bytes(9)
    return b64(b"\xff\xd8" + b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + bytes(9) + app1 + sof0 + b"\xff\xd9")


def gif(width: int, height: int) -> str:
    return b64(b"GIF89a" + struct.pack("<HH", width, height) + bytes(20))


def webp(kind: bytes, width: int, height: int) -> str:
    if kind == b"VP8X":
        payload = bytes(4) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    elif kind == b"VP8L":
        payload = b"\x2f" + ((width - 1) | (height - 1) << 14).to_bytes(4, "little")
    else:
        payload = bytes(3) + b"\x9d\x01\x2a" + struct.pack("<HH", width, height)
    chunk = kind + struct.pack("<I", len(payload)) + payload
    return b64(b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk + bytes(16))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (png(1000, 1000), 1334),  # ceil(1000*1000/750)
        (png(64, 40), media._IMAGE_MIN_TOKENS),
        (png(4000, 3000), media._IMAGE_MAX_TOKENS),  # fitted to 1568x1176 is still over the cap
        (png(3136, 400), 419),  # long edge halved to 1568: 1568*200/750
        (jpeg(800, 600), 640),
        (gif(750, 100), 100),
        (webp(b"VP8X", 900, 500), 600),
        (webp(b"VP8L", 750, 300), 300),
        (webp(b"VP8 ", 750, 200), 200),
        ("not base64 at all!", media._IMAGE_MAX_TOKENS),
        (b64(b"BM unknown format" + bytes(40)), media._IMAGE_MAX_TOKENS),
    ],
)
def test_image_tokens_from_header(data: str, expected: int) -> None:
    """Base64 images cost width*height/750 from their header (Anthropic's rule), within [85, 1600]."""
    assert media.image_tokens({"type": "base64", "media_type": "image/png", "data": data}) == expected


def test_image_url_costs_the_maximum() -> None:
    """An image we cannot measure counts as the largest image."""
    assert media.image_tokens({"type": "url", "url": "https://example.com/a.png"}) == media._IMAGE_MAX_TOKENS


def test_image_in_request_adds_fixed_tokens() -> None:
    """An image block (also inside a tool_result) adds its image tokens and no text."""
    counter = counting_chars()
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png(1000, 1000)}}
    plain = counter.count_request({"messages": [user({"type": "text", "text": "x"})]})
    assert counter.count_request({"messages": [user({"type": "text", "text": "x"}, image)]}) == plain + 1334
    nested = user({"type": "text", "text": "x"}, {"type": "tool_result", "tool_use_id": "t", "content": [image]})
    assert counter.count_request({"messages": [nested]}) == plain + token_parts.MESSAGE_TOKENS + 1334


def test_pdf_pages() -> None:
    """Base64 PDFs cost a fixed amount per page object; unreadable ones fall back to their size."""
    pages = b"<< /Type /Pages /Count 3 >>" + b"<< /Type /Page >>" * 2 + b"<</Type/Page>>"
    assert media.pdf_pages(b64(b"%PDF-1.7\n" + pages)) == 3
    assert media.pdf_pages(b64(b"%PDF-1.7 compressed object streams" + bytes(350_000))) == 3
    assert media.pdf_pages(None) == 1


# TokenCounter and the module-level function


def test_counter_uses_injected_text_counter() -> None:
    """Callers (and tests) can hand L{TokenCounter} any text counter; it is called once per request."""
    calls: list[str] = []

    def spy(text: str) -> int:
        calls.append(text)
        return 10

    counter = TokenCounter(spy)
    assert counter.count_request({"system": "s", "messages": [{"role": "user", "content": "hello"}]}) == 10 + 11
    assert calls == ["s\nhello"]


def test_load_without_exact_is_the_estimator() -> None:
    """load(exact=False) never touches bpe-openai."""
    counter = TokenCounter.load(exact=False)
    assert not counter.exact
    assert counter.count_text("hello world") == estimate_text_tokens("hello world")


def test_load_falls_back_without_bpe_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without bpe-openai, load() quietly returns the estimator."""
    loader: Callable[[], Callable[[str], int] | None] = lambda: None
    monkeypatch.setattr(tokens, "_load_o200k", loader)
    assert not TokenCounter.load().exact

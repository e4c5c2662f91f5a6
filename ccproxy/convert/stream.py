"""OpenAI chunk stream -> Anthropic event stream: one pure state machine (PROTOCOL.md H.6).

Feed it decoded upstream chunks; it returns Anthropic events as C{(name, payload)}
pairs, ready to encode. One content block is open at a time and indices are
contiguous. Reasoning becomes a C{thinking} block closed by one carrier signature.
Tool calls are buffered per call and emitted, with validated and repaired arguments,
as soon as each call is complete: when another call starts and its arguments are whole
JSON (providers that interleave parallel calls' fragments are waited for), when the turn
finishes, or when the stream ends. A stream that ends without a finish is reported as an error,
never as a clean end, so the client does not keep half an answer.
"""

from __future__ import annotations

import json
from typing import Any

from attrs import define, field

from ccproxy.convert.arguments import parse_arguments, split_concatenated
from ccproxy.convert.carrier import Carrier, encode_carrier, text_hash
from ccproxy.convert.fragments import ToolCall, complete_json, merge_detail, starts_new, thought_signature
from ccproxy.convert.names import ToolIdMap, ToolNameMap, client_tool_id
from ccproxy.convert.outcome import anthropic_usage, estimate_tokens, stop_reason
from ccproxy.errors import ApiError, error_payload, from_upstream
from ccproxy.providers import profile_named

__all__ = ["Event", "StreamConverter", "TRUNCATED"]

Event = tuple[str, dict[str, Any]]
TRUNCATED = "upstream stream ended unexpectedly (no finish_reason, no [DONE])"
_REDACTED = "[REDACTED]"
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@define(eq=False)
class StreamConverter:
    """Converts one upstream stream. See the module docstring.

    @ivar model: the model name the client asked for (echoed back).
    @ivar upstream_model: the model that answers, recorded in thinking carriers.
    @ivar profile: the provider profile name, recorded in thinking carriers.
    @ivar input_estimate: the local input-token estimate for C{message_start}.
    @ivar provider: a short upstream name for error messages.
    @ivar secrets: values never to repeat in an error message.
    """

    model: str
    message_id: str
    upstream_model: str
    profile: str
    names: ToolNameMap
    ids: ToolIdMap
    input_estimate: int = 1
    provider: str = "upstream"
    secrets: tuple[str | None, ...] = ()
    _index: int = 0
    _open: str | None = None
    _thinking: list[str] = field(factory=list)
    _details: list[dict[str, Any]] = field(factory=list)
    _calls: dict[object, ToolCall] = field(factory=dict)
    _by_index: dict[int, object] = field(factory=dict)
    _last_key: object = None
    _seen_ids: set[str] = field(factory=set)
    _tool_used: bool = False
    _usage: Any = None
    _finish: str | None = None
    _chars: int = 0
    _ended: bool = False
    _keeps_signatures: bool = field(init=False, default=False)

    def __attrs_post_init__(self) -> None:
        self._keeps_signatures = profile_named(self.profile).replay == "thought_signature"

    @property
    def ended(self) -> bool:
        """Whether the stream is over (finished or failed); later input is ignored."""
        return self._ended

    def start(self) -> list[Event]:
        """C{message_start} (with the input estimate) and a first C{ping}."""
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": max(1, self.input_estimate),
                "output_tokens": 1,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }
        return [
            ("message_start", {"type": "message_start", "message": message}),
            ("ping", {"type": "ping"}),
        ]

    # -- input -----------------------------------------------------------------------

    def feed(self, chunk: Any) -> list[Event]:
        """Convert one decoded upstream chunk."""
        if self._ended or not isinstance(chunk, dict):
            return []
        events: list[Event] = []
        error = chunk.get("error")
        if error:
            return self.fail(self._stream_error(error))
        usage = chunk.get("usage")
        groq = chunk.get("x_groq")
        if not isinstance(usage, dict) and isinstance(groq, dict):
            usage = groq.get("usage")  # Groq may report usage only there (PROTOCOL.md G.6)
        if isinstance(usage, dict):
            self._usage = usage
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices:
            return events
        choice = choices[0]
        if not isinstance(choice, dict):
            return events
        delta = choice.get("delta") or choice.get("message")
        if isinstance(delta, dict):
            self._delta(delta, events)
        finish = choice.get("finish_reason")
        if isinstance(finish, str) and finish:
            if finish == "error":
                return events + self.fail(ApiError(500, "api_error", f"{self.provider}: upstream reported an error"))
            self._finish = finish
            self._flush_calls(events)
        return events

    def _delta(self, delta: dict[str, Any], events: list[Event]) -> None:
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        details = delta.get("reasoning_details")
        if isinstance(details, list) and details:
            self._reasoning_details(details, reasoning, events)
        elif isinstance(reasoning, str) and reasoning:
            self._thinking_text(reasoning, events)
        for key in ("content", "refusal"):
            text = delta.get(key)
            if isinstance(text, str) and text:
                self._text(text, events)
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                if isinstance(call, dict):
                    self._tool_fragment(call, events)

    # -- blocks ----------------------------------------------------------------------

    def _open_block(self, kind: str, block: dict[str, Any], events: list[Event]) -> None:
        self._close_block(events)
        if kind != "tool_use":  # text or thinking after calls: they are all finished
            self._flush_calls(events)
        self._open = kind
        events.append(
            ("content_block_start", {"type": "content_block_start", "index": self._index, "content_block": block})
        )

    def _close_block(self, events: list[Event]) -> None:
        if self._open is None:
            return
        if self._open == "thinking":
            carrier = Carrier(
                profile=self.profile,
                model=self.upstream_model,
                kind="rd" if self._details else "rc",
                details=self._details,
                text_hash=text_hash("".join(self._thinking)),
            )
            self._delta_event({"type": "signature_delta", "signature": encode_carrier(carrier)}, events)
            self._thinking, self._details = [], []
        events.append(("content_block_stop", {"type": "content_block_stop", "index": self._index}))
        self._index += 1
        self._open = None

    def _delta_event(self, delta: dict[str, Any], events: list[Event]) -> None:
        events.append(("content_block_delta", {"type": "content_block_delta", "index": self._index, "delta": delta}))

    def _thinking_text(self, text: str, events: list[Event]) -> None:
        if self._open != "thinking":
            self._open_block("thinking", {"type": "thinking", "thinking": "", "signature": ""}, events)
        if text and text != _REDACTED:
            self._thinking.append(text)
            self._chars += len(text)
            self._delta_event({"type": "thinking_delta", "thinking": text}, events)

    def _reasoning_details(self, details: list[Any], text: Any, events: list[Event]) -> None:
        if not isinstance(text, str) or not text:
            text = "".join(
                str(d.get("text") or d.get("summary") or "") for d in details if isinstance(d, dict)
            )
        self._thinking_text(text, events)
        for detail in details:
            if isinstance(detail, dict):
                merge_detail(self._details, detail)

    def _text(self, text: str, events: list[Event]) -> None:
        if self._open != "text":
            self._open_block("text", {"type": "text", "text": ""}, events)
        self._chars += len(text)
        self._delta_event({"type": "text_delta", "text": text}, events)

    # -- tool calls ------------------------------------------------------------------

    def _tool_fragment(self, fragment: dict[str, Any], events: list[Event]) -> None:
        self._close_block(events)
        function = fragment.get("function")
        function = function if isinstance(function, dict) else {}
        call_id = fragment.get("id") if isinstance(fragment.get("id"), str) else None
        name = function.get("name") if isinstance(function.get("name"), str) else None
        arguments = function.get("arguments")
        key = self._call_key(fragment.get("index"), call_id or None, name)
        if key != self._last_key:
            self._flush_finished_calls(key, events)
            self._last_key = key
        call = self._calls.get(key)
        if call is None:
            call = self._calls[key] = ToolCall(call_id or None)
        if call_id and not call.id:
            call.id = call_id
        if name and not call.name:
            call.name = name
        signature = thought_signature(fragment)
        if signature and not call.signature:
            call.signature = signature
        if isinstance(arguments, str):
            call.arguments.append(arguments)
        elif isinstance(arguments, dict):  # some servers send an object, not a string
            call.arguments.append(_dumps(arguments))

    def _call_key(self, index: Any, call_id: str | None, name: str | None) -> object:
        """Which call a fragment continues (PROTOCOL.md H.6 step 4).

        With an index: the call that index stands for, unless the fragment starts
        another call there (L{starts_new}); later fragments of that index then go to the
        new call. Without one (Gemini): the call with the same id, else the last call
        unless the fragment starts another.
        """
        if isinstance(index, int) and not isinstance(index, bool):
            key = self._by_index.get(index, ("index", index))
            known = self._calls.get(key)
            if known is not None and starts_new(known, call_id, name):
                key = self._by_index[index] = ("id", call_id or len(self._calls))
            return key
        if call_id:
            for key, known in self._calls.items():
                if known.id == call_id:
                    return key
        last = self._calls.get(self._last_key)
        if last is not None and not starts_new(last, call_id, name):
            return self._last_key  # arguments may come before the id and name
        return ("id", call_id) if call_id else ("anonymous", len(self._calls))

    def _flush_finished_calls(self, current: object, events: list[Event]) -> None:
        """Another call's fragment arrived: emit, in order, the calls before it whose
        arguments are whole JSON.

        Usually that is every earlier call. A provider that interleaves the fragments of
        parallel calls (0, 1, 0, 1) leaves a call incomplete when the next one starts; it
        and the calls after it wait for their remaining fragments (or the end of the
        stream), so no fragment arrives for a call already sent and none is lost.
        """
        for key, call in self._calls.items():
            if call.emitted:
                continue
            if key == current or not complete_json(call.arguments):
                return
            call.emitted = True
            self._emit_call(call, events)

    def _flush_calls(self, events: list[Event]) -> None:
        for call in self._calls.values():
            if not call.emitted:
                call.emitted = True
                self._emit_call(call, events)

    def _emit_call(self, call: ToolCall, events: list[Event]) -> None:
        raw = "".join(call.arguments)
        texts = split_concatenated(raw) if raw.count("{") > 1 else [raw]
        for number, text in enumerate(texts):
            upstream_id = call.id if number == 0 else None
            client_id = self.ids.to_client(upstream_id) if upstream_id else None
            tool_id = client_tool_id(client_id, self._seen_ids)
            name = self.names.to_client(call.name or "unknown_tool")
            block = {"type": "tool_use", "id": tool_id, "name": name, "input": {}}
            arguments = parse_arguments(text)
            if number == 0 and call.signature and self._keeps_signatures:
                self._signature_block({tool_id: call.signature}, events)
            self._open_block("tool_use", block, events)
            if arguments:
                encoded = _dumps(arguments)
                self._chars += len(encoded)
                self._delta_event({"type": "input_json_delta", "partial_json": encoded}, events)
            self._open = "tool_use"
            self._close_block(events)
            self._tool_used = True

    def _signature_block(self, signatures: dict[str, str], events: list[Event]) -> None:
        """An empty thinking block whose carrier holds Gemini thought signatures.

        Gemini wants each call's signature back with the call; Claude Code keeps
        nothing of a tool call but its id, name and input, so the signature travels in
        a thinking block placed right before the call (PROTOCOL.md H.6 step 5).
        """
        self._close_block(events)
        start = {"type": "thinking", "thinking": "", "signature": ""}
        events.append(
            ("content_block_start", {"type": "content_block_start", "index": self._index, "content_block": start})
        )
        carrier = Carrier(profile=self.profile, model=self.upstream_model, kind="gs", signatures=signatures)
        self._delta_event({"type": "signature_delta", "signature": encode_carrier(carrier)}, events)
        events.append(("content_block_stop", {"type": "content_block_stop", "index": self._index}))
        self._index += 1

    # -- the end -----------------------------------------------------------------------

    def finish(self, done: bool) -> list[Event]:
        """The upstream body ended; C{done} says whether C{[DONE]} was seen.

        Without C{[DONE]} and without a C{finish_reason} the stream was cut: the client
        gets an error event, not a fabricated clean end.
        """
        if self._ended:
            return []
        if not done and self._finish is None:
            return self.fail(ApiError(500, "api_error", f"{self.provider}: {TRUNCATED}"))
        events: list[Event] = []
        self._close_block(events)
        self._flush_calls(events)
        usage = anthropic_usage(self._usage, self.input_estimate, estimate_tokens(self._chars))
        delta = {"stop_reason": stop_reason(self._finish, self._tool_used), "stop_sequence": None}
        events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        events.append(("message_stop", {"type": "message_stop"}))
        self._ended = True
        return events

    def usage_so_far(self) -> tuple[dict[str, Any], bool]:
        """What the stream has cost until now, for a request that ends without its final usage
        (the client left, the upstream failed), and whether that is an estimate: the upstream's
        numbers if it sent any, else the local estimates of the prompt and of what it wrote."""
        pending = sum(len(part) for call in self._calls.values() if not call.emitted for part in call.arguments)
        written = self._chars + pending  # tool calls are held until whole: count their fragments too
        usage = anthropic_usage(self._usage, self.input_estimate, estimate_tokens(written))
        estimated = not self._usage
        if estimated and not written:
            usage["output_tokens"] = 0  # nothing written yet (anthropic_usage never reports 0)
        return usage, estimated

    def fail(self, error: ApiError) -> list[Event]:
        """End the stream with an C{error} event (nothing may follow it)."""
        if self._ended:
            return []
        self._ended = True
        return [("error", error_payload(error))]

    def _stream_error(self, error: Any) -> ApiError:
        """Map a mid-stream error object (OpenAI, OpenRouter, vLLM dialects)."""
        status = 500
        if isinstance(error, dict):
            code = error.get("code")
            metadata = error.get("metadata")
            kind = f"{code} {metadata.get('error_type') if isinstance(metadata, dict) else ''}"
            if isinstance(code, int) and 400 <= code < 600:
                status = code
            elif "context_length" in kind:
                status = 400  # read as prompt-too-long, so Claude Code compacts
            elif isinstance(code, str) and "rate" in code:
                status = 429
        body = _dumps({"error": error}).encode("utf-8", "backslashreplace")
        return from_upstream(status, body, {}, self.provider, secrets=self.secrets)

"""What each step of a proxied JSON request costs, warm and after the process has slept.

C{python -m bench.stages [--runs N] [--idle MS] [--turns N]}

Runs, in this process and in the daemon's order, the steps ccproxy takes for benchmark (a)'s
48 KB Claude Code request and its 10-chunk answer, timing each: split the body (it resends the
bytes of the one before, so only what is new in it is decoded and validated, by parts remembered
across requests: L{ccproxy.layouts}, L{ccproxy.parts}), estimate the input tokens, convert, build
and encode the upstream body; then parse the upstream's SSE answer, convert its chunks and
assemble and encode the client's message.

It times every step twice: back to back ("warm"), and right after sleeping C{--idle}
milliseconds ("after idle"), as the daemon does between two requests. On this 2-vCPU VM the
second is 3-4x the first, although nothing is recomputed: while a process sleeps, its data
and code leave the CPU caches, and every request starts by fetching them again. That is
why the daemon spends about three times the warm cost per request (benchmark (c), (d)), and
why the lever is touching less memory per request, not only executing fewer instructions.

The order of the steps mirrors L{ccproxy.web.resources.Messages.handle}, the exchange's
request body, L{ccproxy.web.streaming.Relay} and L{ccproxy.web.sinks.MessageSink}; the test
in C{tests/test_bench_stages.py} checks that the request it builds is the one the daemon sends.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.fake_upstream import stream_parts
from bench.requests import anthropic_body
from ccproxy import jsonio
from ccproxy.convert.request import convert_request
from ccproxy.convert.stream import StreamConverter
from ccproxy.convert.walks import WalkMemo
from ccproxy.grammar import final_message
from ccproxy.openai import wire_payload
from ccproxy.parts import RequestParts
from ccproxy.providers import profile_for
from ccproxy.service import tune_garbage_collector
from ccproxy.sse import SSEParser
from ccproxy.tokens import TokenCounter

__all__ = ["STAGES", "Pipeline", "main"]

MODEL = "bench-chunks-10"
STAGES = (
    "split (resent bytes, remembered parts)",
    "count tokens",
    "convert",
    "payload dict",
    "encode upstream body",
    "answer: parse + convert chunks",
    "answer: assemble + encode",
)


def _sse_events(model: str, chunks: int) -> list[bytes]:
    """The fake upstream's answer as the relay reads it: one SSE event per read."""
    role, content, tail = stream_parts(model, chunks)
    pieces = []
    for framed in (role, *content, tail):
        while framed:  # undo the HTTP chunked framing, as twisted.web's client does
            size_line, _, rest = framed.partition(b"\r\n")
            size = int(size_line, 16)
            if size:
                pieces.append(rest[:size])
            framed = rest[size + 2 :]
    return pieces


class Pipeline:
    """One proxy's worth of state (remembered parts, token memo) and the bench request."""

    def __init__(self, turns: int = 0) -> None:
        self.raw = anthropic_body(MODEL, stream=False, turns=turns)
        self.answer = _sse_events(MODEL, 10)
        self.profile = profile_for("http://127.0.0.1:1/v1")
        self.parts = RequestParts()
        self.tokens = TokenCounter()
        self.walks = WalkMemo()

    def run(self, clock: Callable[[], float] = time.perf_counter) -> tuple[list[float], bytes, bytes]:
        """One request and its answer: the time of each step, the upstream body, the client's answer."""
        marks = [clock()]
        parts = self.parts.split_resent(self.raw)
        if parts is None:  # the first time: decoded whole, its layout remembered
            parts = self.parts.split(jsonio.loads(self.raw), self.raw)
        if parts is None:
            raise ValueError("the bench body is not valid")
        parsed = parts.request
        marks.append(clock())
        estimate = self.tokens.count_request(parts.counted, parts.texts)
        marks.append(clock())
        conversion = convert_request(parsed, MODEL, self.profile, walks=self.walks)
        marks.append(clock())
        payload: dict[str, Any] = wire_payload(conversion.request)
        marks.append(clock())
        upstream_body = jsonio.dumps(payload)
        marks.append(clock())
        converter = StreamConverter(
            model=parsed.model,
            message_id="msg_bench",
            upstream_model=conversion.request.model,
            profile=self.profile.name,
            names=conversion.names,
            ids=conversion.ids,
            input_estimate=estimate,
        )
        sse = SSEParser()
        events = converter.start()
        for data in self.answer:
            for event in sse.feed(data):
                if event.data != "[DONE]":
                    events.extend(converter.feed(jsonio.loads(event.data)))
        events.extend(converter.finish(True))
        marks.append(clock())
        answer = jsonio.dumps(final_message(events, keep_events=False, checked=False))
        marks.append(clock())
        return [after - before for before, after in zip(marks, marks[1:])], upstream_body, answer


def measure(runs: int, idle: float, warmup: int = 50, turns: int = 0) -> dict[str, dict[str, float]]:
    """Median microseconds of each step, warm and after sleeping C{idle} seconds.

    @param turns: measure L{bench.requests.long_request} with that many more turns instead.
    """
    pipeline = Pipeline(turns)
    for _ in range(warmup):
        pipeline.run()
    thresholds, enabled = gc.get_threshold(), gc.isenabled()
    tune_garbage_collector()  # as the daemon: start-up objects frozen, young collections rare
    try:
        found: dict[str, dict[str, float]] = {}
        for mode in ("warm", "after idle"):
            times: list[list[float]] = [[] for _ in STAGES]
            for _ in range(runs):
                if mode == "after idle":
                    time.sleep(idle)
                for index, spent in enumerate(pipeline.run()[0]):
                    times[index].append(spent)
            found[mode] = {stage: statistics.median(spent) * 1e6 for stage, spent in zip(STAGES, times)}
            found[mode]["total"] = sum(found[mode].values())
    finally:  # leave a calling process (the tests) as it was
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        if not enabled:
            gc.disable()
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stages", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="requests per mode (default 200)")
    parser.add_argument(
        "--idle", type=float, default=10.0, metavar="MS", help="sleep before each idle run (default 10)"
    )
    parser.add_argument(
        "--turns",
        type=int,
        default=0,
        metavar="N",
        help="the same conversation later in its session: N more rounds of its tool turns (40: 289 messages, 600 KB)",
    )
    args = parser.parse_args(argv)
    found = measure(args.runs, args.idle / 1000, turns=args.turns)
    warm, idle = found["warm"], found["after idle"]
    size = round(len(Pipeline(args.turns).raw) / 1024)
    title = f"step ({size} KB request, 10-chunk answer)"
    print(f"{title:40} {'warm µs':>9} {'after idle µs':>14} {'ratio':>6}")
    for stage in (*STAGES, "total"):
        print(f"{stage:40} {warm[stage]:9.1f} {idle[stage]:14.1f} {idle[stage] / warm[stage]:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""bench.stages times what the daemon does: same upstream body, same answer, step by step."""

from __future__ import annotations

import json
from typing import Any

import pytest
import pytest_twisted

from bench.stages import STAGES, Pipeline, measure
from tests.fake_upstream import Reply
from tests.web.test_integration import post


@pytest.mark.parametrize("turns", [0, 3])
@pytest_twisted.ensureDeferred
async def test_pipeline_sends_and_answers_what_the_daemon_does(harness: Any, turns: int) -> None:
    pipeline = Pipeline(turns)
    assert len(json.loads(pipeline.raw)["messages"]) == 9 + 7 * turns
    times, upstream_body, answer = pipeline.run()
    assert len(times) == len(STAGES) and all(spent >= 0 for spent in times)

    url = harness.start([Reply(chunks=list(pipeline.answer), done=False)])
    response, raw = await post(url + "/v1/messages", pipeline.raw)
    assert response.code == 200
    assert harness.upstream.received[0].body == json.loads(upstream_body)
    from_daemon, from_pipeline = json.loads(raw), json.loads(answer)
    assert from_daemon.pop("id").startswith("msg_")
    assert from_pipeline.pop("id") == "msg_bench"
    assert from_daemon == from_pipeline
    assert from_daemon["content"][0]["text"]  # the fake answer's words arrived


def test_measure_reports_every_step_in_both_modes() -> None:
    found = measure(runs=3, idle=0.001, warmup=2)
    for mode in ("warm", "after idle"):
        assert set(found[mode]) == {*STAGES, "total"}
        assert found[mode]["total"] == sum(found[mode][stage] for stage in STAGES) > 0

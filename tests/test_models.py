"""Model capabilities: the known table, MODEL_LIMITS overrides and output budgeting."""

from __future__ import annotations

import json
from typing import Any

import pytest
import pytest_twisted

from ccproxy.models import ModelInfo, budget_output, model_info, parse_model_limits
from tests.fake_upstream import text_reply
from tests.web.test_integration import body, post


def test_known_models_match_by_longest_prefix_without_provider() -> None:
    """openai/gpt-4o-mini is gpt-4o; o3-pro is o3; unknown names have no entry."""
    assert model_info("openai/gpt-4o-mini") == model_info("gpt-4o")
    info = model_info("o3-pro")
    assert info is not None and info.reasoning
    assert model_info("llama3.2:3b") is None


def test_overrides_win_and_parse_strictly() -> None:
    """MODEL_LIMITS entries override the table; malformed entries are refused."""
    limits = parse_model_limits("llama3.2:3b=4096:8192, gpt-4o=8000")
    assert model_info("llama3.2:3b", limits) == ModelInfo(4096, 8192)
    assert model_info("gpt-4o", limits) == ModelInfo(8000, 0)
    with pytest.raises(ValueError, match="model=max_output"):
        parse_model_limits("gpt-4o")


def test_h11_13_budget_caps_by_model_and_window() -> None:
    """128000 requested -> the model's cap, then the room left in its window."""
    assert budget_output(128000, ModelInfo(16384, 128000), 1000) == 16384
    assert budget_output(128000, ModelInfo(65536, 32768), 30000) == 2768
    assert budget_output(128000, ModelInfo(65536, 32768), 40000) is None
    assert budget_output(500, None, 10**9) == 500


@pytest_twisted.ensureDeferred
async def test_h11_13_claude_codes_128000_is_capped_for_gpt_4o(harness: Any) -> None:
    """Claude Code's max_tokens 128000 reaches gpt-4o as its 16384 maximum."""
    url = harness.start([text_reply("ok")], sonnet_model="gpt-4o")
    response, _ = await post(url + "/v1/messages", body(max_tokens=128000))
    assert response.code == 200
    assert harness.upstream.received[0].body["max_tokens"] == 16384


@pytest_twisted.ensureDeferred
async def test_prompt_beyond_the_window_is_refused_locally(harness: Any) -> None:
    """A prompt that cannot fit the configured window gets Claude Code's prompt-too-long
    wording (so it compacts) without an upstream call."""
    url = harness.start([], sonnet_model="tiny", model_limits=parse_model_limits("tiny=1000:2000"))
    big = body(messages=[{"role": "user", "content": "lorem ipsum dolor sit amet " * 2000}])
    response, raw = await post(url + "/v1/messages", big)
    assert response.code == 400
    message = json.loads(raw)["error"]["message"]
    assert message.startswith("prompt is too long: ") and message.endswith(" tokens > 2000 maximum")
    assert harness.upstream.received == []

"""Fixing a request from the upstream's 400 (ccproxy.adapt), with real provider wordings."""

from __future__ import annotations

from ccproxy.adapt import Fix, LearnedFixes, fix_for_error

OPENAI_MAX_TOKENS = (
    "Unsupported parameter: 'max_tokens' is not supported with this model. "
    "Use 'max_completion_tokens' instead."
)
OPENAI_TEMPERATURE = (
    "Unsupported value: 'temperature' does not support 0.2 with this model. "
    "Only the default (1) value is supported."
)
OPENAI_TOO_LARGE = (
    "max_tokens is too large: 128000. This model supports at most 16384 completion tokens, "
    "whereas you provided 128000."
)
VLLM_TOO_LARGE = (
    "'max_tokens' or 'max_completion_tokens' is too large: 32000. This model's maximum context "
    "length is 32768 tokens and your request has 1200 input tokens (32000 > 32768 - 1200)."
)


def test_max_tokens_renamed_for_reasoning_models() -> None:
    """OpenAI's reasoning-model 400 renames max_tokens to max_completion_tokens."""
    body = {"model": "o3", "max_tokens": 32000}
    fix = fix_for_error(body, OPENAI_MAX_TOKENS, "max_tokens")
    assert fix is not None and fix.apply(body) == {"model": "o3", "max_completion_tokens": 32000}


def test_sampling_parameters_dropped_as_a_pair() -> None:
    """A rejected temperature drops temperature and top_p."""
    body = {"model": "gpt-5", "temperature": 0.2, "top_p": 0.9, "max_completion_tokens": 10}
    fix = fix_for_error(body, OPENAI_TEMPERATURE, "temperature")
    assert fix is not None and fix.apply(body) == {"model": "gpt-5", "max_completion_tokens": 10}


def test_h11_13_output_cap_learned_from_the_maximum() -> None:
    """'supports at most N completion tokens' caps the token field at N."""
    body = {"model": "gpt-4o", "max_completion_tokens": 128000}
    fix = fix_for_error(body, OPENAI_TOO_LARGE, "max_tokens")
    assert fix == Fix(cap=16384)
    assert fix.apply(body)["max_completion_tokens"] == 16384


def test_h11_13_vllm_cap_leaves_room_for_the_prompt() -> None:
    """vLLM's 'X > window - input' gives the room left after the prompt."""
    fix = fix_for_error({"max_tokens": 32000}, VLLM_TOO_LARGE)
    assert fix == Fix(cap=31568)


def test_other_wordings_of_the_token_limit() -> None:
    """DeepSeek's valid range and Groq's 'less than or equal' are understood too."""
    assert fix_for_error({"max_tokens": 128000}, "Invalid max_tokens value, the valid range of max_tokens is [1, 8192]") == Fix(cap=8192)
    groq = "`max_tokens` must be less than or equal to `32768`, the maximum value for `max_tokens` is less than the `context_window` for this model"
    assert fix_for_error({"max_tokens": 128000}, groq) == Fix(cap=32768)


def test_unrelated_400_has_no_fix() -> None:
    """Schema errors and the like are passed to the client unchanged."""
    assert fix_for_error({"max_tokens": 100}, "messages[3]: tool_call_id not found") is None
    assert fix_for_error({"max_tokens": 100}, OPENAI_TOO_LARGE) is None  # already below the cap


def test_learned_fixes_merge_per_model() -> None:
    """Fixes accumulate per (base URL, model) and apply to later requests."""
    store = LearnedFixes()
    store.learn("https://x/v1", "o3", Fix(rename=(("max_tokens", "max_completion_tokens"),)))
    store.learn("https://x/v1", "o3", Fix(drop=frozenset({"temperature"}), cap=100000))
    fix = store.get("https://x/v1", "o3")
    assert fix is not None
    assert fix.apply({"max_tokens": 128000, "temperature": 1}) == {"max_completion_tokens": 100000}
    assert store.get("https://x/v1", "gpt-5") is None

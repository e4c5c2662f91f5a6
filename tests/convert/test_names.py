"""Tests for L{ccproxy.convert.names} (PROTOCOL.md H.3, G.1, G.7; H.11 items 6 and 15)."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccproxy.convert.names import (
    ANY_ID,
    MISTRAL_ID,
    OPENAI_ID,
    AlphanumericId,
    MaxLengthId,
    ToolIdMap,
    ToolNameMap,
    client_tool_id,
    upstream_tool_id,
    upstream_tool_name,
)

SAFE = re.compile(r"[a-zA-Z0-9_-]+")
MCP_NAME = "mcp__claude_ai_Atlassian_Cloud__getConfluencePageDescendantsWithFullHierarchy"


def expected_name(name: str) -> str:
    """The H.3 formula, written out independently of the module."""
    digest = base64.b32encode(hashlib.sha1(name.encode()).digest()).decode().lower()
    return re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:55] + "_" + digest[:8]


# Names


@pytest.mark.parametrize("name", ["Bash", "mcp__github__create_issue", "a-b_C9", "x" * 64])
def test_h11_15_valid_name_is_unchanged(name: str) -> None:
    """Names OpenAI accepts (≤64 safe characters) go upstream as they are."""
    assert upstream_tool_name(name) == name


def test_h11_15_long_mcp_name_mapped_and_back() -> None:
    """A >64-character MCP name gets the H.3 prefix+hash name and maps back."""
    assert len(MCP_NAME) > 64
    names = ToolNameMap.from_names(["Bash", MCP_NAME])
    upstream = names.to_upstream(MCP_NAME)
    assert upstream == expected_name(MCP_NAME)
    assert len(upstream) == 64
    assert upstream.startswith(MCP_NAME[:55] + "_")
    assert names.to_client(upstream) == MCP_NAME
    assert names.to_upstream("Bash") == "Bash"
    assert names.to_client("Bash") == "Bash"


def test_h11_15_name_of_65_characters_is_mapped() -> None:
    """One character over the limit is enough to map."""
    assert upstream_tool_name("x" * 65) == expected_name("x" * 65)


@pytest.mark.parametrize("name", ["my.tool", "tool:v2", "outil_été", "a b"])
def test_h11_15_invalid_characters_are_sanitized(name: str) -> None:
    """Characters outside C{[a-zA-Z0-9_-]} become C{_} and a hash keeps names distinct."""
    upstream = upstream_tool_name(name)
    assert upstream == expected_name(name)
    assert SAFE.fullmatch(upstream)


def test_h11_15_sanitized_names_do_not_collide() -> None:
    """Names that sanitize to the same prefix still map to distinct names."""
    assert upstream_tool_name("a.b") != upstream_tool_name("a:b")


def test_h11_15_unknown_upstream_name_passes_through() -> None:
    """A name the request never mentioned comes back unchanged."""
    assert ToolNameMap.from_names([MCP_NAME]).to_client("Unknown") == "Unknown"


def test_h11_15_unlisted_name_still_maps_upstream() -> None:
    """A history or tool_choice name not given at build time maps the same way."""
    assert ToolNameMap.from_names([]).to_upstream(MCP_NAME) == expected_name(MCP_NAME)


@given(st.text(max_size=200))
def test_h11_15_name_mapping_is_valid_and_deterministic(name: str) -> None:
    """Any name maps to a valid ≤64-character name, the same one every time."""
    upstream = upstream_tool_name(name)
    assert len(upstream) <= 64
    assert SAFE.fullmatch(upstream)
    assert upstream_tool_name(name) == upstream


@given(st.lists(st.text(min_size=1, max_size=150), unique=True, max_size=8))
def test_h11_15_name_map_round_trips(names: list[str]) -> None:
    """Every name given at build time maps upstream and back to itself."""
    mapping = ToolNameMap.from_names(names)
    for name in names:
        assert mapping.to_client(mapping.to_upstream(name)) == name


# Ids, response direction


@pytest.mark.parametrize("upstream_id", [None, "", "  "])
def test_h11_6_missing_id_is_minted(upstream_id: str | None) -> None:
    """A missing or empty id becomes C{toolu_} plus 24 random base62 characters."""
    seen: set[str] = set()
    first = client_tool_id(upstream_id, seen)
    second = client_tool_id(upstream_id, seen)
    assert re.fullmatch(r"toolu_[0-9a-zA-Z]{24}", first)
    assert first != second
    assert seen == {first, second}


def test_h11_6_valid_id_passes_through() -> None:
    """A valid upstream id is kept, so the next request's ids match the upstream's."""
    assert client_tool_id("call_abc-123", set()) == "call_abc-123"


def test_h11_6_id_with_colon_is_sanitized() -> None:
    """C{functions.Bash:0} becomes valid, deterministic and distinct from look-alikes."""
    result = client_tool_id("functions.Bash:0", set())
    assert re.fullmatch(r"functions_Bash_0_[a-z2-7]{6}", result)
    assert client_tool_id("functions.Bash:0", set()) == result
    assert client_tool_id("functions:Bash.0", set()) != result
    assert client_tool_id("functions_Bash_0", set()) != result


def test_h11_6_duplicate_ids_get_suffixes() -> None:
    """Repeated ids within one response become C{_2}, C{_3}."""
    seen: set[str] = set()
    results = [client_tool_id("call_1", seen) for _ in range(3)]
    assert results == ["call_1", "call_1_2", "call_1_3"]
    assert client_tool_id("call_1_2", seen) == "call_1_2_2"


@given(st.lists(st.none() | st.text(max_size=50), max_size=10))
def test_h11_6_client_ids_are_valid_and_unique(upstream_ids: list[str | None]) -> None:
    """Whatever the upstream sends, one response's C{tool_use} ids are valid and distinct."""
    seen: set[str] = set()
    results = [client_tool_id(upstream_id, seen) for upstream_id in upstream_ids]
    assert all(SAFE.fullmatch(result) for result in results)
    assert len(set(results)) == len(results)


# Ids, request direction


def test_h11_6_free_rule_keeps_valid_ids() -> None:
    """Providers without an id rule get valid ids unchanged, whatever their length."""
    client_id = "toolu_" + "x" * 100
    assert upstream_tool_id(client_id, ANY_ID) == client_id


def test_h11_6_free_rule_sanitizes_invalid_ids() -> None:
    """Invalid characters are still replaced, deterministically."""
    result = upstream_tool_id("functions.Bash:0", ANY_ID)
    assert SAFE.fullmatch(result)
    assert upstream_tool_id("functions.Bash:0", ANY_ID) == result


def test_h11_6_short_id_is_unchanged_for_openai() -> None:
    """Ids of at most 40 characters reach OpenAI unchanged."""
    client_id = "toolu_01A09q90qw90lq917835lq9"
    assert upstream_tool_id(client_id, OPENAI_ID) == client_id
    assert upstream_tool_id("c" * 40, OPENAI_ID) == "c" * 40


def test_h11_6_long_id_is_shortened_for_openai() -> None:
    """Ids over 40 characters (from other providers) become a 40-character prefix+hash."""
    first = "call_" + "a" * 60
    second = "call_" + "a" * 59 + "b"
    result = upstream_tool_id(first, OPENAI_ID)
    assert len(result) == 40
    assert result.startswith("call_aaa")
    assert SAFE.fullmatch(result)
    assert upstream_tool_id(first, OPENAI_ID) == result
    assert upstream_tool_id(second, OPENAI_ID) != result


def test_h11_6_mistral_ids_are_nine_alphanumerics() -> None:
    """Mistral gets 9 C{[a-zA-Z0-9]} ids; its own ids come back unchanged."""
    result = upstream_tool_id("toolu_01A09q90qw90lq917835lq9", MISTRAL_ID)
    assert re.fullmatch(r"[a-zA-Z0-9]{9}", result)
    assert upstream_tool_id("toolu_01A09q90qw90lq917835lq9", MISTRAL_ID) == result
    assert upstream_tool_id("D681PevKs", MISTRAL_ID) == "D681PevKs"
    assert upstream_tool_id("D681PevK_", MISTRAL_ID) != "D681PevK_"


def test_h11_6_rules_reject_impossible_limits() -> None:
    """A limit too small to hold a hash is a configuration error."""
    with pytest.raises(ValueError):
        MaxLengthId(8)
    with pytest.raises(ValueError):
        AlphanumericId(3)


def test_h11_6_id_map_is_identical_for_calls_and_results_and_maps_back() -> None:
    """C{tool_calls[].id} and C{tool_call_id} map alike, and the upstream id maps back."""
    ids = ToolIdMap(MISTRAL_ID)
    client_id = "toolu_01A09q90qw90lq917835lq9"
    upstream = ids.to_upstream(client_id)
    assert ids.to_upstream(client_id) == upstream
    assert ids.to_client(upstream) == client_id
    assert ids.to_client("Zz9Zz9Zz9") == "Zz9Zz9Zz9"


def test_h11_6_id_map_keeps_unmapped_ids() -> None:
    """Ids the rule leaves alone are not recorded and map back to themselves."""
    ids = ToolIdMap()
    assert ids.to_upstream("call_1") == "call_1"
    assert ids.to_client("call_1") == "call_1"


@given(st.text(max_size=100))
def test_h11_6_mistral_ids_always_nine_alphanumerics(client_id: str) -> None:
    """Any client id maps to exactly 9 alphanumerics, deterministically."""
    result = upstream_tool_id(client_id, MISTRAL_ID)
    assert re.fullmatch(r"[a-zA-Z0-9]{9}", result)
    assert upstream_tool_id(client_id, MISTRAL_ID) == result


@given(st.text(max_size=100))
def test_h11_6_openai_ids_always_fit(client_id: str) -> None:
    """Any client id maps to at most 40 safe characters, deterministically."""
    result = upstream_tool_id(client_id, OPENAI_ID)
    assert len(result) <= 40
    assert SAFE.fullmatch(result)
    assert upstream_tool_id(client_id, OPENAI_ID) == result


@given(st.lists(st.text(max_size=60), unique=True, max_size=10))
def test_h11_6_id_map_round_trips(client_ids: list[str]) -> None:
    """Under every rule, each request id maps upstream and back to itself."""
    for rule in (ANY_ID, OPENAI_ID, MISTRAL_ID):
        ids = ToolIdMap(rule)
        for client_id in client_ids:
            assert ids.to_client(ids.to_upstream(client_id)) == client_id


def test_h11_6_lone_surrogates_do_not_crash() -> None:
    """Lone surrogates (legal in JSON escapes) still hash; nothing raises."""
    assert SAFE.fullmatch(upstream_tool_name("tool\ud800"))
    assert SAFE.fullmatch(client_tool_id("call\udfff", set()))
    assert re.fullmatch(r"[a-zA-Z0-9]{9}", upstream_tool_id("\ud800", MISTRAL_ID))

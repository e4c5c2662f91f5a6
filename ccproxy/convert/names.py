# -*- test-case-name: tests.convert.test_names -*-
"""
Tool names and tool-call ids, mapped between what the client and the upstream accept.

Anthropic allows 128-character tool names, OpenAI 64; providers disagree on id shapes
(OpenAI ≤40 characters, Mistral exactly 9 alphanumerics). Every mapping to the upstream is
a deterministic hash, so history replayed on the next request maps the same way without
any state kept between requests (PROTOCOL.md H.3, G.1, G.7).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import string
from collections.abc import Iterable, Mapping
from typing import Protocol

from attrs import define, field, frozen, validators

__all__ = [
    "ANY_ID",
    "MISTRAL_ID",
    "OPENAI_ID",
    "AlphanumericId",
    "FreeId",
    "IdRule",
    "MaxLengthId",
    "ToolIdMap",
    "ToolNameMap",
    "client_tool_id",
    "upstream_tool_id",
    "upstream_tool_name",
]

MAX_NAME_LENGTH = 64
_NAME_PREFIX = 55
_SAFE = re.compile(r"[a-zA-Z0-9_-]+")
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
_BASE62 = string.digits + string.ascii_letters
_ALPHANUMERIC = re.compile(r"[a-zA-Z0-9]+")
_ID_HASH_LENGTH = 10  # 50 bits: no collision among one conversation's ids


def _hash32(text: str) -> str:
    """Lower-case base32 SHA-1 of C{text}: 32 characters, all valid in names and ids."""
    data = text.encode("utf-8", "surrogatepass")  # lone surrogates can come from JSON
    digest = hashlib.sha1(data, usedforsecurity=False).digest()
    return base64.b32encode(digest).decode("ascii").lower()


def _sanitize(text: str, hash_length: int) -> str:
    """Return C{text} if it is safe, else it with C{_} for bad characters plus a hash."""
    if _SAFE.fullmatch(text):
        return text
    return _UNSAFE.sub("_", text) + "_" + _hash32(text)[:hash_length]


# Names


def upstream_tool_name(name: str) -> str:
    """
    Map a client tool name to one OpenAI accepts (≤64 characters of C{[a-zA-Z0-9_-]}).

    Valid names are unchanged; others become a sanitised 55-character prefix, C{_} and 8
    hash characters, so long MCP names stay readable and distinct.
    """
    if len(name) <= MAX_NAME_LENGTH and _SAFE.fullmatch(name):
        return name
    return _UNSAFE.sub("_", name[:_NAME_PREFIX]) + "_" + _hash32(name)[:8]


@frozen
class ToolNameMap:
    """
    The tool names of one request, mapped both ways.

    Build it from every name the request mentions (tool definitions, history C{tool_use}
    names, C{tool_choice}), so names the model sends back can be reversed.
    """

    _upstream: Mapping[str, str]
    _client: Mapping[str, str]

    @classmethod
    def from_names(cls, names: Iterable[str]) -> ToolNameMap:
        """Map each client name; only names that change are stored."""
        upstream = {n: u for n in names if (u := upstream_tool_name(n)) != n}
        return cls(upstream, {u: n for n, u in upstream.items()})

    def to_upstream(self, name: str) -> str:
        """Return the upstream name; names not given at build time are mapped too."""
        return self._upstream.get(name) or upstream_tool_name(name)

    def to_client(self, upstream_name: str) -> str:
        """Return the client name, or C{upstream_name} itself if it was not mapped."""
        return self._client.get(upstream_name, upstream_name)


# Ids, response direction


def client_tool_id(upstream_id: str | None, seen: set[str]) -> str:
    """
    Map an upstream tool-call id to a C{tool_use.id} that is valid and unique.

    Missing ids are minted (C{toolu_} + 24 random base62); ids with characters outside
    C{[a-zA-Z0-9_-]} (C{functions.Bash:0}) are sanitised with a 6-character hash; others
    pass through so the next request's ids match the upstream's own. Repeats within one
    response (recorded in C{seen}, which is updated) get C{_2}, C{_3}, ….
    """
    if upstream_id is None or not upstream_id.strip():
        base = "toolu_" + "".join(secrets.choice(_BASE62) for _ in range(24))
    else:
        base = _sanitize(upstream_id, 6)
    result, count = base, 1
    while result in seen:
        count += 1
        result = f"{base}_{count}"
    seen.add(result)
    return result


# Ids, request direction


class IdRule(Protocol):
    """A provider's constraint on the tool-call ids it is sent."""

    def apply(self, client_id: str) -> str:
        """Return the id to send upstream; deterministic, identity when allowed."""


@frozen
class FreeId:
    """Any id of C{[a-zA-Z0-9_-]}; other characters are replaced (hash appended)."""

    def apply(self, client_id: str) -> str:
        """Return C{client_id}, sanitised when needed."""
        return _sanitize(client_id, 6)


@frozen
class MaxLengthId:
    """Ids of at most C{limit} safe characters; longer ones keep a prefix plus a hash."""

    limit: int = field(validator=validators.ge(16))

    def apply(self, client_id: str) -> str:
        """Return C{client_id} sanitised, shortened to C{limit} with a hash if longer."""
        safe = _sanitize(client_id, 6)
        if len(safe) <= self.limit:
            return safe
        prefix = safe[: self.limit - _ID_HASH_LENGTH - 1]
        return prefix + "_" + _hash32(client_id)[: _ID_HASH_LENGTH]


@frozen
class AlphanumericId:
    """Ids of exactly C{length} characters of C{[a-zA-Z0-9]} (Mistral's rule)."""

    length: int = field(validator=validators.ge(6))

    def apply(self, client_id: str) -> str:
        """Return C{client_id} if it already fits, else a base62 hash of it."""
        if len(client_id) == self.length and _ALPHANUMERIC.fullmatch(client_id):
            return client_id
        data = client_id.encode("utf-8", "surrogatepass")
        number = int.from_bytes(hashlib.sha1(data, usedforsecurity=False).digest(), "big")
        digits = []
        for _ in range(self.length):
            number, digit = divmod(number, 62)
            digits.append(_BASE62[digit])
        return "".join(digits)


ANY_ID: IdRule = FreeId()
OPENAI_ID: IdRule = MaxLengthId(40)
MISTRAL_ID: IdRule = AlphanumericId(9)


def upstream_tool_id(client_id: str, rule: IdRule) -> str:
    """Map a client tool id (C{toolu_…} or one we minted) to one C{rule} accepts."""
    return rule.apply(client_id)


@define(eq=False)
class ToolIdMap:
    """
    Tool ids of one request, mapped to the upstream and remembered for the way back.

    Use L{to_upstream} for both C{tool_calls[].id} and C{tool_call_id}, so the pair keeps
    matching; a response that carries a mapped id is reversed with L{to_client}.
    """

    rule: IdRule = ANY_ID
    _client: dict[str, str] = field(factory=dict)

    def to_upstream(self, client_id: str) -> str:
        """Return the upstream id for C{client_id} and remember the reverse mapping."""
        upstream = self.rule.apply(client_id)
        if upstream != client_id:
            self._client.setdefault(upstream, client_id)
        return upstream

    def to_client(self, upstream_id: str) -> str:
        """Return the client id behind C{upstream_id}, or C{upstream_id} if unmapped."""
        return self._client.get(upstream_id, upstream_id)

    def learned(self) -> tuple[tuple[str, str], ...]:
        """The (upstream id, client id) pairs remembered so far, for L{learn}."""
        return tuple(self._client.items())

    def learn(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Remember C{pairs} as if their ids had been mapped here (first mapping wins)."""
        for upstream, client in pairs:
            self._client.setdefault(upstream, client)

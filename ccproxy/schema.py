# -*- test-case-name: tests.providers.test_profiles -*-
"""Tool input schemas as the providers accept them (PROTOCOL.md H.3, G.5).

Claude Code describes its tools with JSON Schema (draft 2020-12, from zod): C{$schema},
C{additionalProperties: false}, C{exclusiveMinimum}, C{format: "uri"}, and MCP servers
add C{$ref}/C{$defs}. Most providers take that as is, minus C{$schema}
(L{clean_schema}). Gemini's OpenAI-compatible endpoint takes only its OpenAPI 3.0
subset and answers anything else with a 400, so L{gemini_schema} rewrites the schema
into that subset. Pure functions; the input is never modified.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["clean_schema", "gemini_schema", "GEMINI_KEYWORDS", "GEMINI_STRING_FORMATS"]

GEMINI_KEYWORDS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "items",
        "minimum",
        "maximum",
    }
)
"""The keywords of Gemini's C{Schema} object; every other keyword is dropped.

Dropped that way, among others: C{$schema}, C{$id}, C{$comment}, C{additionalProperties},
C{patternProperties}, C{propertyNames}, C{unevaluatedProperties}, C{exclusiveMinimum},
C{exclusiveMaximum}, C{multipleOf}, C{uniqueItems}, C{contains}, C{not},
C{if}/C{then}/C{else}, C{dependentRequired}, C{examples}, C{readOnly}, C{writeOnly},
C{deprecated}, C{contentEncoding}, C{contentMediaType}. Rewritten rather than dropped:
C{$ref} (inlined from C{$defs}/C{definitions}), C{const} (a one-value C{enum}),
C{oneOf} (C{anyOf}), C{allOf} (merged), a C{type} list or a C{null} option of C{anyOf}
(one type plus C{nullable}),
C{prefixItems}/tuple C{items} (the first item schema).
"""

GEMINI_STRING_FORMATS = frozenset({"enum", "date-time"})
"""The only C{format} values Gemini accepts for strings; C{uri}, C{email}, … are dropped.

A schema without a type (C{{}}, an C{enum} of numbers) gets one Gemini accepts: from its
shape (properties, items) or its values, else C{string}."""

_MAX_DEPTH = 24


def clean_schema(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """A tool's JSON schema as function C{parameters}: no C{$schema}, always an object."""
    cleaned = {k: v for k, v in (schema or {}).items() if k != "$schema"}
    cleaned.setdefault("type", "object")
    if cleaned["type"] == "object":
        cleaned.setdefault("properties", {})
    return cleaned


def gemini_schema(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """A tool's JSON schema rewritten into the subset Gemini accepts (see L{GEMINI_KEYWORDS}).

    An object without properties is sent without the (empty) C{properties}, which
    Gemini rejects; an array without C{items} gets string items, which it requires.
    """
    root = dict(schema or {})
    root.setdefault("type", "object")
    definitions: dict[str, Any] = {}
    for key in ("definitions", "$defs"):
        found = root.get(key)
        if isinstance(found, Mapping):
            definitions.update(found)
    return _gemini(root, definitions, (), 0)


def _resolve(ref: Any, definitions: Mapping[str, Any]) -> tuple[str, Any] | None:
    """The definition a local C{$ref} (C{#/$defs/X}, C{#/definitions/X}) points at."""
    if not isinstance(ref, str):
        return None
    for prefix in ("#/$defs/", "#/definitions/"):
        if ref.startswith(prefix):
            name = ref[len(prefix) :]
            target = definitions.get(name)
            return (name, target) if isinstance(target, Mapping) else None
    return None


def _merge_all_of(node: dict[str, Any]) -> dict[str, Any]:
    """C{node} with its C{allOf} members merged in (properties and required united)."""
    members = node.pop("allOf")
    if not isinstance(members, list):
        return node
    merged = dict(node)
    for member in members:
        if not isinstance(member, Mapping):
            continue
        for key, value in member.items():
            if key == "properties" and isinstance(value, Mapping):
                merged["properties"] = {**dict(merged.get("properties") or {}), **value}
            elif key == "required" and isinstance(value, list):
                merged["required"] = list(dict.fromkeys([*(merged.get("required") or []), *value]))
            else:
                merged.setdefault(key, value)
    return merged


def _without_null_option(node: dict[str, Any]) -> dict[str, Any]:
    """C{anyOf: [X, {type: null}]} (how zod and pydantic say "optional") as X plus C{nullable}."""
    options = node.get("anyOf", node.get("oneOf"))
    if not isinstance(options, list):
        return node
    kept = [o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")]
    if len(kept) == len(options):
        return node
    rest = {k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}
    rest["nullable"] = True
    if len(kept) == 1 and isinstance(kept[0], Mapping):
        return {**kept[0], **rest}
    rest["anyOf"] = kept
    return rest


def _implied_type(node: Mapping[str, Any], result: Mapping[str, Any]) -> str:
    """A type for a schema that names none (Gemini wants one): from its shape or values."""
    if "properties" in result:
        return "object"
    if "items" in result:
        return "array"
    values = node.get("enum")
    if isinstance(values, list) and values and not any(isinstance(v, str) for v in values):
        if all(isinstance(v, bool) for v in values):
            return "boolean"
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return "integer"
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return "number"
    return "string"  # an unconstrained value: the model sends text


def _gemini(node: Any, definitions: Mapping[str, Any], seen: tuple[str, ...], depth: int) -> dict[str, Any]:
    """One schema node in Gemini's subset; C{seen} holds the C{$ref} names being expanded."""
    if depth > _MAX_DEPTH:
        return {"type": "object"}
    if not isinstance(node, Mapping):  # a boolean schema (true: anything)
        return {"type": "string"}
    node = _without_null_option(dict(node))
    resolved = _resolve(node.pop("$ref", None), definitions)
    if resolved is not None:
        name, target = resolved
        if name in seen:  # a recursive type: Gemini has no way to say it
            return {"type": "object", **({"description": node["description"]} if "description" in node else {})}
        node = {**target, **node}
        seen = (*seen, name)
    if "allOf" in node:
        node = _merge_all_of(node)
    if "oneOf" in node and "anyOf" not in node:
        node["anyOf"] = node.pop("oneOf")
    if "const" in node and "enum" not in node:
        node["enum"] = [node.pop("const")]
    kind = node.get("type")
    if kind == "null":
        kind = ["null"]
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        if len(kinds) < len(kind):
            node["nullable"] = True
        node["type"] = kinds[0] if kinds else "string"
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key not in GEMINI_KEYWORDS:
            continue
        if key == "properties":
            if isinstance(value, Mapping):
                result[key] = {str(k): _gemini(v, definitions, seen, depth + 1) for k, v in value.items()}
        elif key == "items":
            if isinstance(value, list):  # tuple form: the first position's schema
                value = value[0] if value else {}
            result[key] = _gemini(value, definitions, seen, depth + 1)
        elif key == "anyOf":
            if isinstance(value, list):
                options = [_gemini(v, definitions, seen, depth + 1) for v in value]
                result[key] = [o for o in options if o]
        elif key == "enum":
            if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                result[key] = value
        elif key == "format":
            if value in GEMINI_STRING_FORMATS:
                result[key] = value
        else:
            result[key] = value
    if "items" not in result and isinstance(node.get("prefixItems"), list) and node["prefixItems"]:
        result["items"] = _gemini(node["prefixItems"][0], definitions, seen, depth + 1)
    if "type" not in result and "anyOf" not in result:
        result["type"] = _implied_type(node, result)
    if result.get("format") == "enum" and not result.get("enum"):
        del result["format"]
    if result.get("type") == "array" and "items" not in result:
        result["items"] = {"type": "string"}
    properties = result.get("properties")
    if properties is not None and not properties:
        del result["properties"]
    required = result.get("required")
    if required is not None:
        names = set(result.get("properties") or {})
        kept = [r for r in required if isinstance(r, str) and r in names] if isinstance(required, list) else []
        if kept:
            result["required"] = kept
        else:
            del result["required"]
    if not result.get("anyOf", True):
        del result["anyOf"]
    return result

"""The thinking-signature carrier (PROTOCOL.md H.4).

Claude Code replays each thinking block's C{signature} byte for byte on the next
request and never checks it. ccproxy therefore puts, in that signature, what the
provider needs back later (OpenRouter C{reasoning_details}, Gemini thought signatures)
plus where it came from, so reasoning is replayed only to the provider and model that
produced it. Foreign signatures (real Anthropic ones) simply fail to decode.

Format: C{"ccp1." + base64url(zlib(json))}, unpadded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import zlib
from typing import Any

from attrs import field, frozen

__all__ = ["Carrier", "PREFIX", "encode_carrier", "decode_carrier"]

PREFIX = "ccp1."
_MAX_DECODED = 4 * 1024 * 1024


@frozen
class Carrier:
    """What a thinking block's signature carries.

    @ivar profile: the provider profile that produced the reasoning.
    @ivar model: the upstream model that produced it.
    @ivar kind: C{rc} (plain reasoning text), C{rd} (reasoning_details) or C{gs}
        (Gemini thought signatures).
    @ivar details: OpenRouter C{reasoning_details}, unmodified.
    @ivar signatures: Gemini thought signatures by tool-call id.
    @ivar text_hash: a short hash of the thinking text, to notice edited text.
    """

    profile: str
    model: str
    kind: str = "rc"
    details: list[dict[str, Any]] = field(factory=list)
    signatures: dict[str, str] = field(factory=dict)
    text_hash: str = ""


def text_hash(text: str) -> str:
    """A short, stable hash of thinking text."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def encode_carrier(carrier: Carrier) -> str:
    """The signature string for C{carrier}; never empty."""
    data: dict[str, Any] = {"v": 1, "p": carrier.profile, "m": carrier.model, "t": carrier.kind}
    if carrier.details:
        data["rd"] = carrier.details
    if carrier.signatures:
        data["gs"] = carrier.signatures
    if carrier.text_hash:
        data["h"] = carrier.text_hash
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    # A lone surrogate (JSON allows one) becomes its \u escape again, which decodes back.
    raw = text.encode("utf-8", "backslashreplace")
    packed = base64.urlsafe_b64encode(zlib.compress(raw, 6)).rstrip(b"=")
    return PREFIX + packed.decode("ascii")


def decode_carrier(signature: str) -> Carrier | None:
    """The carrier in C{signature}, or C{None} for foreign or damaged signatures."""
    if not signature.startswith(PREFIX):
        return None
    packed = signature[len(PREFIX) :]
    try:
        compressed = base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4))
        inflater = zlib.decompressobj()
        raw = inflater.decompress(compressed, _MAX_DECODED)
        data = json.loads(raw)
    except (binascii.Error, ValueError, zlib.error):
        return None
    if not isinstance(data, dict) or data.get("v") != 1:
        return None
    details = data.get("rd", [])
    signatures = data.get("gs", {})
    if not isinstance(details, list) or not isinstance(signatures, dict):
        return None
    return Carrier(
        profile=str(data.get("p", "")),
        model=str(data.get("m", "")),
        kind=str(data.get("t", "rc")),
        details=[d for d in details if isinstance(d, dict)],
        signatures={str(k): str(v) for k, v in signatures.items()},
        text_hash=str(data.get("h", "")),
    )

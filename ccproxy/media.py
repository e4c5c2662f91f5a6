# -*- test-case-name: tests.test_tokens -*-
"""
Token cost of the images and PDFs in a Messages request, for L{ccproxy.tokens}.

Their base64 is never tokenized: the model sees an image or a PDF page, not its bytes, and Anthropic documents what
each costs. An image follows Anthropic's rule, width*height/750 tokens once its long edge is fitted into 1568 px,
kept between 85 and 1600; its size is read from the PNG, GIF, WebP or JPEG header without decoding the image. A PDF
costs a fixed number of tokens per page, its pages counted from the page objects (or estimated from its size). Pure
functions, standard library only.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct

__all__ = ["PDF_PAGE_TOKENS", "image_tokens", "pdf_pages"]

# Images: Anthropic's rule is width*height/750 after fitting the long edge into 1568 px, at most ~1600; OpenAI
# charges at least 85 per image. Unknown size (URL, unreadable header) counts as the maximum.
_IMAGE_MAX_TOKENS = 1600
_IMAGE_MIN_TOKENS = 85
_IMAGE_MAX_EDGE = 1568
# PDFs: Anthropic documents 1,500-3,000 text tokens per page plus a page image.
PDF_PAGE_TOKENS = 2500
_PDF_BYTES_PER_PAGE = 100_000

# Enough base64 for any header we read, including a JPEG whose frame header follows a 64 KB EXIF segment.
_IMAGE_HEADER_CHARS = 88_000


def image_tokens(source: object) -> int:
    """Token cost of an image block's C{source}."""
    if not isinstance(source, dict) or source.get("type") != "base64":
        return _IMAGE_MAX_TOKENS
    data = source.get("data")
    size = _image_size(data) if isinstance(data, str) else None
    if size is None:
        return _IMAGE_MAX_TOKENS
    width, height = size
    scale = min(1.0, _IMAGE_MAX_EDGE / max(width, height))
    tokens = math.ceil(width * scale * height * scale / 750)
    return min(_IMAGE_MAX_TOKENS, max(_IMAGE_MIN_TOKENS, tokens))


def _image_size(data: str) -> tuple[int, int] | None:
    """Read (width, height) from the header of a base64 PNG, GIF, WebP or JPEG, or L{None}."""
    prefix = data[:_IMAGE_HEADER_CHARS]
    try:
        head = base64.b64decode(prefix[: len(prefix) - len(prefix) % 4])
    except (binascii.Error, ValueError):
        return None
    try:
        if head.startswith(b"\x89PNG\r\n\x1a\n"):
            width, height = struct.unpack(">II", head[16:24])
        elif head[:6] in (b"GIF87a", b"GIF89a"):
            width, height = struct.unpack("<HH", head[6:10])
        elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return _webp_size(head)
        elif head[:2] == b"\xff\xd8":
            return _jpeg_size(head)
        else:
            return None
    except struct.error:
        return None
    return (width, height) if width > 0 and height > 0 else None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, (bits >> 14 & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    return None


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    """Walk the JPEG segments to the first start-of-frame marker."""
    offset = 2
    while offset + 9 <= len(head):
        if head[offset] != 0xFF:
            return None
        marker = head[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        (length,) = struct.unpack(">H", head[offset + 2 : offset + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", head[offset + 5 : offset + 9])
            return (width, height) if width and height else None
        offset += 2 + length
    return None


def pdf_pages(data: object) -> int:
    """Count the pages of a base64 PDF, falling back to its size when page objects are compressed."""
    if not isinstance(data, str):
        return 1
    try:
        pdf = base64.b64decode(data)
    except (binascii.Error, ValueError):
        return max(1, len(data) * 3 // 4 // _PDF_BYTES_PER_PAGE)
    pages = sum(pdf.count(b"/Type" + gap + b"/Page") - pdf.count(b"/Type" + gap + b"/Pages") for gap in (b"", b" "))
    return pages if pages > 0 else max(1, len(pdf) // _PDF_BYTES_PER_PAGE)

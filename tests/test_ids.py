"""Minted ids: Anthropic's shape (prefix + 24 base62 characters), never repeated."""

from __future__ import annotations

import re

from ccproxy.ids import message_id, new_id, request_id


def test_ids_have_the_anthropic_shape() -> None:
    assert re.fullmatch(r"req_[A-Za-z0-9]{24}", request_id())
    assert re.fullmatch(r"msg_[A-Za-z0-9]{24}", message_id())
    assert re.fullmatch(r"toolu_[A-Za-z0-9]{10}", new_id("toolu_", 10))


def test_ids_do_not_repeat_and_use_the_whole_alphabet() -> None:
    ids = [new_id("") for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert set("".join(ids)) == set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")

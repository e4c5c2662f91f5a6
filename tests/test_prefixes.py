"""The memo of where folds over conversations stopped (ccproxy.prefixes), with a toy fold: a
running sum over the values of item objects."""

from __future__ import annotations

import gc

from attrs import define
from hypothesis import given, settings
from hypothesis import strategies as st

from ccproxy.prefixes import KEEP, LOOKBACK, PrefixMemo


@define(eq=False)
class Item:
    value: int


def _weigh(state: int, before: tuple[int, int] | None) -> int:
    return 1


def fold(memo: PrefixMemo[int], items: list[Item], tag: object = None, owner: object = None) -> tuple[int, int]:
    """The sum of C{items}' values, resumed and remembered as the walk and the token count do;
    and how many items it resumed over."""
    resumed = memo.resume(items, tag, owner)
    start, total = (resumed.length, resumed.state) if resumed is not None else (0, 0)
    states = {}
    for index in range(start, len(items)):
        total += items[index].value
        if index >= len(items) - KEEP:
            states[index + 1] = total
    memo.remember(items, states, resumed, tag, owner)
    return total, start


def test_a_longer_conversation_resumes_after_the_longest_remembered_start() -> None:
    memo: PrefixMemo[int] = PrefixMemo(_weigh, 100, 8)
    items = [Item(n) for n in range(10)]
    assert fold(memo, items[:6]) == (15, 0)
    assert fold(memo, items[:8]) == (28, 6)
    assert fold(memo, items[:5] + [Item(100)]) == (110, 5)  # before the last, the line kept 4 states
    assert fold(memo, items[:8]) == (28, 5)  # the fork replaced that line, keeping the states they share


def test_the_tag_and_the_owner_tell_folds_apart() -> None:
    memo: PrefixMemo[int] = PrefixMemo(_weigh, 100, 8)
    items = [Item(n) for n in range(3)]
    owner = object()
    fold(memo, items, "model", owner)
    assert memo.resume(items, "model", owner) is not None
    assert memo.resume(items, "other", owner) is None
    assert memo.resume(items, "model", object()) is None  # and that line is forgotten
    assert memo.resume(items, "model", owner) is None


def test_a_retry_keeps_its_line() -> None:
    memo: PrefixMemo[int] = PrefixMemo(_weigh, 100, 8)
    items = [Item(n) for n in range(6)]
    fold(memo, items)
    (line,) = memo._lines
    assert fold(memo, items) == (15, 6)
    assert memo._lines == {line: None}  # the same line, not a copy


def test_only_the_last_lookback_positions_are_tried() -> None:
    memo: PrefixMemo[int] = PrefixMemo(_weigh, 100, 8)
    items = [Item(1) for _ in range(1 + LOOKBACK)]
    fold(memo, items[:1])
    assert memo.resume(items[:LOOKBACK], None) is not None
    assert memo.resume(items, None) is None


def test_items_that_died_are_not_resumed_over() -> None:
    memo: PrefixMemo[int] = PrefixMemo(_weigh, 100, 8)
    items = [Item(n) for n in range(3)]
    fold(memo, items)
    del items[0]
    gc.collect()
    assert fold(memo, [Item(7), *items]) == (10, 0)


def test_the_memo_is_bounded_by_lines_and_weight() -> None:
    memo: PrefixMemo[int] = PrefixMemo(lambda state, before: state, 10, 3)
    kept = [[Item(n)] for n in (1, 2, 3, 4)]
    for items in kept:
        fold(memo, items)
    assert len(memo) == 3 and memo.resume(kept[0]) is None
    fold(memo, [Item(9)])  # weighs 9: the others leave
    assert len(memo) == 1
    heavy = [Item(11)]
    fold(memo, heavy)  # heavier than the bound: not remembered
    assert memo.resume(heavy) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, 5), max_size=12), min_size=1, max_size=8))
def test_property_a_resumed_fold_is_a_fresh_fold(requests: list[list[int]]) -> None:
    """Requests that continue, retry and fork earlier ones (items drawn from one pool, as the
    parts memo hands out the same object for the same message) fold as from scratch."""
    pool = [Item(n) for n in range(6)]
    memo: PrefixMemo[int] = PrefixMemo(_weigh, 1_000, 4)
    for request in requests:
        items = [pool[n] for n in request]
        assert fold(memo, items)[0] == sum(item.value for item in items)

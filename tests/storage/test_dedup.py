from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from storage.dedup import IdIndex
from storage.schema import UTC_MICROS


def stamps(*hours: int | None) -> pa.Array:
    values = [None if h is None else datetime(2024, 3, 1, h, tzinfo=UTC) for h in hours]
    return pa.array(values, UTC_MICROS)


def test_unique_ids_drop_nothing() -> None:
    index = IdIndex()
    index.add(pa.array(["a", "b"]), stamps(1, 2), part=0, offset=0)
    index.add(pa.array(["c"]), stamps(3), part=1, offset=0)
    assert index.drops() == {}


def test_the_latest_updated_at_wins_wherever_it_arrives() -> None:
    index = IdIndex()
    index.add(pa.array(["a", "b", "a"]), stamps(5, 1, 2), part=0, offset=0)
    index.add(pa.array(["a", "c"]), stamps(3, 1), part=1, offset=0)
    # "a" at hour 5 (part 0, row 0) stays; rows 2 of part 0 and 0 of part 1 go.
    assert index.drops() == {0: [2], 1: [0]}


def test_ties_and_nulls_keep_the_later_row() -> None:
    index = IdIndex()
    index.add(pa.array(["a", "a", "b", "b", "c", "c"]), stamps(4, 4, 7, None, None, None), 0, 0)
    # a: tie -> later row (1) stays; b: a value beats null -> row 2 stays; c: both null -> row 5.
    assert index.drops() == {0: [0, 3, 4]}


def test_offsets_follow_each_batchs_place_in_its_part() -> None:
    index = IdIndex()
    index.add(pa.array(["x", "y"]), stamps(1, 1), part=3, offset=10)
    index.add(pa.array(["y"]), stamps(2), part=4, offset=0)
    index.add(pa.array(["x"]), stamps(2), part=3, offset=12)
    assert index.drops() == {3: [10, 11]}

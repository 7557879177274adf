from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

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


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("abcd"), st.one_of(st.none(), st.integers(0, 3))),
        max_size=30,
    ),
    st.lists(st.integers(1, 5), min_size=1, max_size=8),
)
def test_drops_match_a_plain_model_of_keep_latest(
    rows: list[tuple[str, int | None]], batch_sizes: list[int]
) -> None:
    """Rows arrive in batches spread over parts; exactly one row per id survives: the latest
    updated_at, then the latest arrival."""
    index = IdIndex()
    where: list[tuple[int, int]] = []
    part_rows = [0, 0, 0]
    position = 0
    turn = 0
    while position < len(rows):
        size = batch_sizes[turn % len(batch_sizes)]
        chunk = rows[position : position + size]
        part = turn % 3
        index.add(
            pa.array([r[0] for r in chunk]), stamps(*(r[1] for r in chunk)), part, part_rows[part]
        )
        where += [(part, part_rows[part] + i) for i in range(len(chunk))]
        part_rows[part] += len(chunk)
        position += size
        turn += 1

    best: dict[str, int] = {}
    for arrival, (key, hour) in enumerate(rows):
        rank = (-1 if hour is None else hour, arrival)
        held = best.get(key)
        if held is None or rank >= (-1 if rows[held][1] is None else rows[held][1], held):
            best[key] = arrival
    expected: dict[int, list[int]] = {}
    for arrival in sorted(set(range(len(rows))) - set(best.values())):
        part, offset = where[arrival]
        expected.setdefault(part, []).append(offset)
    assert index.drops() == {part: sorted(offsets) for part, offsets in expected.items()}

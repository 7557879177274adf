from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.dedup import BUCKET_ROWS, Fingerprints, IdIndex, fingerprints
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
    st.sampled_from([BUCKET_ROWS, 1, 3]),
)
def test_drops_match_a_plain_model_of_keep_latest(
    rows: list[tuple[str, int | None]], batch_sizes: list[int], bucket_rows: int
) -> None:
    """Rows arrive in batches spread over parts; exactly one row per id survives: the latest
    updated_at, then the latest arrival. Large inputs are looked at in buckets (here tiny)."""
    index = IdIndex(bucket_rows=bucket_rows)
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


def test_equal_ids_share_a_fingerprint_and_different_ones_do_not() -> None:
    ids = [
        "",
        "a",
        "a\0",
        "0123456789abcdef",
        "0123456789abcdeg",
        "3f2c1e8a-5b7d-4c9e-8f1a-2b3c4d5e6f70",
        "3f2c1e8a-5b7d-4c9e-8f1a-2b3c4d5e6f71",
        "3f2c1e8b-5b7d-4c9e-8f1a-2b3c4d5e6f70",
        "ünïcödé-ïd",
    ]
    prints = fingerprints(pa.array(ids + ids)).to_pylist()

    assert prints[: len(ids)] == prints[len(ids) :]
    assert len(set(prints)) == len(ids)
    # Without short ids in the batch, the long ones are sliced as they are: same fingerprints.
    long = [key for key in ids if len(key.encode()) >= 16]
    assert fingerprints(pa.array(long)).to_pylist() == [prints[ids.index(key)] for key in long]


def test_candidates_are_the_rows_of_repeated_ids_as_runs_in_arrival_order(
    tmp_path: Path,
) -> None:
    prints = Fingerprints(tmp_path / "prints", bucket_rows=2)
    prints.add(pa.array(["x", "y", "z", "w"]), part=0, offset=0)
    prints.add(pa.array(["q", "y", "x"]), part=1, offset=0)
    prints.add(pa.array(["w"]), part=0, offset=4)

    assert prints.candidates() == [(0, 0, 2), (0, 3, 1), (1, 1, 2), (0, 4, 1)]


def test_unique_ids_have_no_candidates(tmp_path: Path) -> None:
    prints = Fingerprints(tmp_path / "prints", bucket_rows=3)
    prints.add(pa.array([f"id-{n}" for n in range(20)]), part=0, offset=0)

    assert prints.candidates() == []


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(alphabet="ab\0é", max_size=20), max_size=30),
    st.sampled_from([BUCKET_ROWS, 1, 4]),
)
def test_every_row_of_a_repeated_id_is_a_candidate(ids: list[str], bucket_rows: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        prints = Fingerprints(Path(directory) / "prints", bucket_rows=bucket_rows)
        prints.add(pa.array(ids[: len(ids) // 2], pa.string()), part=0, offset=0)
        prints.add(pa.array(ids[len(ids) // 2 :], pa.string()), part=0, offset=len(ids) // 2)
        runs = prints.candidates()

    chosen = {offset + n for _, offset, rows in runs for n in range(rows)}

    assert {n for n, key in enumerate(ids) if ids.count(key) > 1} <= chosen

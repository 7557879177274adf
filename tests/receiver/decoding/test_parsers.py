"""Blocks parsed on two threads: the same batches, columns and errors as parsing them one after
another, and no thread left behind when a file fails or its reader stops early."""

from __future__ import annotations

import json
import threading
from collections.abc import Generator
from functools import partial
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver.decoding import DecodeError, read_batches
from receiver.decoding.drift import MAX_UNKNOWN_FIELDS, Drift
from receiver.decoding.parsers import Parsers
from receiver.decoding.rows import json_block_batch, json_lines_batch

FAST = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
UNKNOWN = ["ticketId", "meta", "score", "tags"]


def _block(records: list[dict[str, object]]) -> tuple[bytes, int]:
    return b"\n".join(json.dumps(record).encode() for record in records), len(records)


def _record(index: int, unknown: list[str]) -> dict[str, object]:
    record: dict[str, object] = {"id": f"m{index}", "chatId": "c1", "content": "hi"}
    for name in unknown:
        record[name] = {"n": index} if name == "meta" else index
    return record


def _one_after_another(blocks: list[tuple[bytes, int]]) -> list[pa.RecordBatch | None]:
    drift = Drift()
    return [json_lines_batch(data, rows, drift) for data, rows in blocks]


def _all_at_once(blocks: list[tuple[bytes, int]]) -> list[pa.RecordBatch | None]:
    """Every block submitted before any result is taken: each parses on a snapshot that
    knows none of the fields the blocks before it teach."""
    with Parsers() as parsers:
        parses = [parsers.submit(partial(json_lines_batch, data, rows)) for data, rows in blocks]
        return [parse.result() for parse in parses]


def _same(left: list[pa.RecordBatch | None], right: list[pa.RecordBatch | None]) -> None:
    assert len(left) == len(right)
    for one, other in zip(left, right, strict=True):
        if one is None or other is None:
            assert one is other
        else:
            assert one.schema.equals(other.schema, check_metadata=True)
            assert one.equals(other)


fields = st.lists(st.sampled_from(UNKNOWN), unique=True, max_size=3)
block = st.lists(fields, min_size=1, max_size=4)


@FAST
@given(blocks=st.lists(block, min_size=1, max_size=5))
def test_blocks_parsed_at_once_give_the_batches_of_blocks_parsed_in_turn(
    blocks: list[list[list[str]]],
) -> None:
    texts = [
        _block([_record(index, unknown) for index, unknown in enumerate(records)])
        for records in blocks
    ]

    _same(_all_at_once(texts), _one_after_another(texts))


def test_a_field_learnt_earlier_keeps_its_place_before_a_later_blocks_own() -> None:
    texts = [_block([_record(0, ["score"])]), _block([_record(1, ["ticketId", "score"])])]

    batches = _all_at_once(texts)

    assert batches[1] is not None
    assert batches[1].schema.names[-2:] == ["score", "ticketId"]
    _same(batches, _one_after_another(texts))


def test_too_many_unknown_fields_across_blocks_fail_as_they_do_in_turn() -> None:
    half = MAX_UNKNOWN_FIELDS // 2 + 1
    texts = [
        _block([{"id": "m1", **{f"a{index}": 1 for index in range(half)}}]),
        _block([{"id": "m2", **{f"b{index}": 1 for index in range(half)}}]),
    ]
    with pytest.raises(DecodeError, match="fields the API does not have"):
        _one_after_another(texts)

    with pytest.raises(DecodeError, match="fields the API does not have"):
        _all_at_once(texts)


def test_an_invalid_record_is_reported_with_its_number_after_the_blocks_before_it() -> None:
    good, rows = _block([_record(0, ["ticketId"]), _record(1, [])])
    bad = b'{"id": "m2", "score": 1}\n{"id": "m3", "score": }'
    with Parsers() as parsers:
        first = parsers.submit(partial(json_block_batch, good, rows, 0))
        second = parsers.submit(partial(json_block_batch, bad, 2, rows))

        assert first.result().num_rows == rows
        with pytest.raises(DecodeError, match="record 3 is not valid JSON"):
            second.result()


def _ndjson(path: Path, messages: int) -> Path:
    with path.open("w") as out:
        for index in range(messages):
            out.write(json.dumps(_record(index, ["ticketId"] if index % 10 == 0 else [])) + "\n")
    return path


def test_a_reader_closed_early_leaves_no_parser_thread(tmp_path: Path) -> None:
    path = _ndjson(tmp_path / "export.ndjson", 2000)
    before = threading.active_count()
    batches = read_batches(path, batch_rows=100)
    assert isinstance(batches, Generator)
    next(batches)
    assert threading.active_count() > before

    batches.close()

    assert threading.active_count() == before


def test_a_file_that_fails_leaves_no_parser_thread(tmp_path: Path) -> None:
    path = _ndjson(tmp_path / "export.ndjson", 1000)
    with path.open("a") as out:
        out.write('{"id": "broken", "content": }\n')
    with path.open("a") as out:
        out.write(_ndjson(tmp_path / "more.ndjson", 1000).read_text())
    before = threading.active_count()

    with pytest.raises(DecodeError, match="record 1000"):
        for _ in read_batches(path, batch_rows=100):
            pass

    assert threading.active_count() == before

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from storage.commit import WriteOptions, write_window
from storage.layout import Window, manifest_key, part_key, rejects_key, staging_prefix
from storage.manifest import read_manifest
from storage.objectstore import ObjectStore
from storage.records import Lineage, normalize_batch
from storage.schema import MESSAGE_SCHEMA
from tests.storage.messages import (
    DAY,
    INGESTED,
    WINDOW,
    batch,
    batches_of,
    day_of_messages,
    message,
)

TINY = WriteOptions(part_bytes=4_000, row_group_bytes=2_000)


def read_archive(store: ObjectStore, tmp_path: Path) -> pa.Table:
    """Every Parquet object under the stream, read back through the store."""
    tables = []
    for number, info in enumerate(store.list("chat_messages/")):
        local = tmp_path / "read" / f"{number}.parquet"
        store.download_file(info.key, local)
        tables.append(pq.read_table(local))
    if not tables:
        return MESSAGE_SCHEMA.empty_table()
    return pa.concat_tables(tables).sort_by("id")


def expected_rows(records: list[dict[str, object]], window: Window = WINDOW) -> pa.Table:
    normalized = normalize_batch(batch(records), Lineage("export-1", window, INGESTED)).batch
    return pa.Table.from_batches([normalized]).sort_by("id")


def part_keys(store: ObjectStore) -> list[str]:
    return [info.key for info in store.list("chat_messages/")]


def test_rows_read_back_equal_the_input_in_every_field(store: ObjectStore, tmp_path: Path) -> None:
    records = day_of_messages(40)
    result = write_window(
        store, WINDOW, "export-1", batches_of(records, 7), ingested_at=INGESTED, options=TINY
    )
    assert result.rows == 40 and result.rejects == 0
    archived = read_archive(store, tmp_path)
    assert archived.schema.equals(MESSAGE_SCHEMA)
    assert archived.to_pylist() == expected_rows(records).to_pylist()
    assert result.manifest_key == manifest_key(WINDOW)
    assert read_manifest(store, WINDOW) is not None


def test_a_window_across_midnight_writes_two_partitions(local_store: ObjectStore) -> None:
    window = Window(DAY + timedelta(hours=12), DAY + timedelta(hours=36))
    records = day_of_messages(10, start=window.start, step=timedelta(hours=2))
    result = write_window(local_store, window, "e", [batch(records)], ingested_at=INGESTED)
    assert [part.key for part in result.parts] == [
        part_key(DAY.date(), window, 0),
        part_key((DAY + timedelta(days=1)).date(), window, 0),
    ]
    assert [part.rows for part in result.parts] == [6, 4]
    manifest = read_manifest(local_store, window)
    assert manifest is not None
    assert [str(day) for day in manifest.dates] == ["2024-03-01", "2024-03-02"]


def test_tiny_part_bytes_roll_into_numbered_parts_with_several_row_groups(
    local_store: ObjectStore, tmp_path: Path
) -> None:
    records = day_of_messages(300)
    result = write_window(
        local_store, WINDOW, "e", batches_of(records, 20), ingested_at=INGESTED, options=TINY
    )
    assert len(result.parts) > 2
    assert [part.key for part in result.parts] == [
        part_key(DAY.date(), WINDOW, number) for number in range(len(result.parts))
    ]
    assert sum(part.rows for part in result.parts) == 300
    local = tmp_path / "one.parquet"
    local_store.download_file(result.parts[0].key, local)
    metadata = pq.ParquetFile(local).metadata
    assert metadata.num_row_groups > 1
    column = metadata.row_group(0).column(0)
    assert column.compression == "ZSTD"
    assert column.is_stats_set and column.statistics.has_min_max


def test_writing_a_window_twice_gives_the_same_keys_and_bytes(local_store: ObjectStore) -> None:
    records = day_of_messages(120)
    first = write_window(
        local_store, WINDOW, "e", batches_of(records, 25), ingested_at=INGESTED, options=TINY
    )
    second = write_window(
        local_store, WINDOW, "e", batches_of(records, 25), ingested_at=INGESTED, options=TINY
    )
    assert first.parts == second.parts
    assert second.deleted == []
    later = write_window(
        local_store,
        WINDOW,
        "e",
        batches_of(records, 25),
        ingested_at=INGESTED + timedelta(days=1),
        options=TINY,
    )
    assert [p.key for p in later.parts] == [p.key for p in first.parts]


def test_rewriting_with_fewer_rows_leaves_no_stale_parts(
    store: ObjectStore, tmp_path: Path
) -> None:
    many = day_of_messages(200)
    first = write_window(
        store, WINDOW, "e1", batches_of(many, 20), ingested_at=INGESTED, options=TINY
    )
    assert len(first.parts) > 1
    few = many[:5]
    second = write_window(store, WINDOW, "e2", [batch(few)], ingested_at=INGESTED, options=TINY)
    assert len(second.parts) == 1
    assert part_keys(store) == [second.parts[0].key]
    assert sorted(second.deleted) == sorted(p.key for p in first.parts[1:])
    assert read_archive(store, tmp_path).column("id").to_pylist() == sorted(r["id"] for r in few)


def test_a_row_far_outside_the_window_writes_no_partition_of_its_own(
    local_store: ObjectStore,
) -> None:
    early = message(1, DAY - timedelta(days=20))
    result = write_window(
        local_store, WINDOW, "e", [batch([early, message(2, DAY)])], ingested_at=INGESTED
    )
    assert part_keys(local_store) == [part_key(DAY.date(), WINDOW, 0)]
    assert result.rejects == 1


def test_a_globbing_reader_sees_no_part_of_a_window_until_every_part_is_uploaded(
    store: ObjectStore,
) -> None:
    write_window(store, WINDOW, "e1", batches_of(day_of_messages(300), 20), ingested_at=INGESTED)
    old_parts = part_keys(store)
    seen: list[tuple[int, int]] = []

    def reader_looks(rows: int) -> None:
        # Called before every object the commit writes: what a glob of the table sees then.
        changed = [key for key in part_keys(store) if key not in old_parts]
        staged = list(store.list(staging_prefix(WINDOW)))
        seen.append((len(changed), len(staged)))

    result = write_window(
        store,
        WINDOW,
        "e2",
        batches_of(day_of_messages(300), 20),
        ingested_at=INGESTED,
        options=TINY,
        fence=reader_looks,
    )
    parts = len(result.parts)
    assert parts > 2
    # The new parts appear in the table's prefix only once all of them are staged.
    assert all(staged == parts for changed, staged in seen if changed)
    assert max(staged for _, staged in seen) == parts
    assert list(store.list("_staging/")) == []


def test_uploads_staged_by_an_attempt_that_crashed_are_removed(local_store: ObjectStore) -> None:
    leftover = staging_prefix(WINDOW) + part_key(DAY.date(), WINDOW, 9)
    local_store.put_bytes(leftover, b"an upload of a crashed attempt")
    write_window(local_store, WINDOW, "e", [batch([message(1, DAY)])], ingested_at=INGESTED)
    assert list(local_store.list("_staging/")) == []
    assert part_keys(local_store) == [part_key(DAY.date(), WINDOW, 0)]


def test_parts_left_by_an_attempt_that_never_committed_are_deleted(
    local_store: ObjectStore,
) -> None:
    orphan = part_key(DAY.date(), WINDOW, 7)
    local_store.put_bytes(orphan, b"half-written attempt")
    result = write_window(
        local_store, WINDOW, "e", [batch([message(1, DAY)])], ingested_at=INGESTED
    )
    assert result.deleted == [orphan]
    assert local_store.size(orphan) is None


def test_other_windows_parts_in_the_same_partition_are_untouched(
    local_store: ObjectStore,
) -> None:
    morning = Window(DAY, DAY + timedelta(hours=12))
    evening = Window(DAY + timedelta(hours=12), DAY + timedelta(days=1))
    write_window(local_store, morning, "a", [batch([message(1, DAY)])], ingested_at=INGESTED)
    late = DAY + timedelta(hours=13)
    write_window(local_store, evening, "b", [batch([message(2, late)])], ingested_at=INGESTED)
    write_window(local_store, evening, "b", [], ingested_at=INGESTED)
    assert part_keys(local_store) == [part_key(DAY.date(), morning, 0)]


def test_an_empty_window_commits_a_manifest_with_no_parts(store: ObjectStore) -> None:
    result = write_window(store, WINDOW, "e", [], ingested_at=INGESTED)
    assert (result.rows, result.rejects, result.parts) == (0, 0, [])
    assert part_keys(store) == []
    manifest = read_manifest(store, WINDOW)
    assert manifest is not None
    assert manifest.rows == 0 and manifest.parts == ()
    document = json.loads(store.get_bytes(result.manifest_key))
    assert document["parts"] == [] and document["window_start"] == "2024-03-01T00:00:00Z"


def test_rejects_are_written_as_jsonl_and_removed_when_gone(store: ObjectStore) -> None:
    bad = message(2, DAY, createdAt="never")
    records = [message(1, DAY), bad, message(3, DAY, id=None)]
    result = write_window(store, WINDOW, "e", [batch(records)], ingested_at=INGESTED)
    assert (result.rows, result.rejects) == (1, 2)
    lines = store.get_bytes(rejects_key(WINDOW)).decode().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"reason": "createdAt is not an ISO-8601 date-time: 'never'", "record": bad},
        {"reason": "missing id", "record": message(3, DAY, id=None)},
    ]
    manifest = read_manifest(store, WINDOW)
    assert manifest is not None
    assert (manifest.rejects, manifest.rejects_key) == (2, rejects_key(WINDOW))

    again = write_window(store, WINDOW, "e", [batch([message(1, DAY)])], ingested_at=INGESTED)
    assert again.deleted == [rejects_key(WINDOW)]
    assert store.size(rejects_key(WINDOW)) is None


def test_duplicates_keep_the_latest_updated_at_across_batches_and_parts(
    local_store: ObjectStore, tmp_path: Path
) -> None:
    created = DAY + timedelta(hours=1)
    records = day_of_messages(60)
    old = message(7, created, content="old", updatedAt="2024-03-01T02:00:00Z")
    newest = message(7, created, content="newest", updatedAt="2024-03-01T05:00:00+02:00")
    stale = message(7, created, content="stale", updatedAt="2024-03-01T01:00:00Z")
    records = [*records[:7], old, *records[8:30], newest, *records[30:], stale]
    result = write_window(
        local_store, WINDOW, "e", batches_of(records, 9), ingested_at=INGESTED, options=TINY
    )
    assert result.rows == 60
    archived = read_archive(local_store, tmp_path)
    assert pc.count_distinct(archived.column("id")).as_py() == 60
    kept = archived.filter(pc.equal(archived.column("id"), old["id"])).to_pylist()
    assert [row["content"] for row in kept] == ["newest"]
    manifest = read_manifest(local_store, WINDOW)
    assert manifest is not None and manifest.duplicates == 2


def test_a_part_emptied_by_deduplication_is_not_uploaded(local_store: ObjectStore) -> None:
    two_days = Window(DAY, DAY + timedelta(days=2))
    first = message(1, DAY, updatedAt="2024-03-01T01:00:00Z")
    moved = message(1, DAY + timedelta(days=1), updatedAt="2024-03-01T09:00:00Z")
    result = write_window(
        local_store, two_days, "e", [batch([first]), batch([moved])], ingested_at=INGESTED
    )
    assert [part.key for part in result.parts] == [
        part_key((DAY + timedelta(days=1)).date(), two_days, 0)
    ]


def test_rows_outside_the_window_go_to_rejects_with_the_reason(
    local_store: ObjectStore, tmp_path: Path
) -> None:
    inside = [message(n, DAY + timedelta(hours=n)) for n in range(3)]
    before = message(10, DAY - timedelta(hours=1))
    after = message(11, DAY + timedelta(days=1))
    result = write_window(
        local_store, WINDOW, "e", [batch([*inside, before, after])], ingested_at=INGESTED
    )
    assert result.rows == 3 and result.rejects == 2
    archived = read_archive(local_store, tmp_path)
    assert sorted(archived.column("id").to_pylist()) == sorted(m["id"] for m in inside)
    manifest = read_manifest(local_store, WINDOW)
    assert manifest is not None and manifest.rows_outside_window == 2
    assert manifest.rejects_key is not None
    lines = [json.loads(line) for line in local_store.get_bytes(manifest.rejects_key).splitlines()]
    assert {line["record"]["id"] for line in lines} == {before["id"], after["id"]}
    assert {line["reason"] for line in lines} == {"createdAt lies outside the requested window"}
    assert {line["record"]["createdAt"] for line in lines} == {
        before["createdAt"],
        after["createdAt"],
    }


class BrokenExport(Exception):
    pass


def test_an_error_from_the_batches_writes_nothing(local_store: ObjectStore) -> None:
    def batches() -> Iterator[pa.RecordBatch]:
        yield batch([message(1, DAY)])
        raise BrokenExport("truncated file")

    with pytest.raises(BrokenExport):
        write_window(local_store, WINDOW, "e", batches(), ingested_at=INGESTED)
    assert list(local_store.list("")) == []


def test_staging_goes_to_the_given_tmp_dir_and_is_cleaned(
    local_store: ObjectStore, tmp_path: Path
) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    options = WriteOptions(tmp_dir=staging)
    write_window(
        local_store, WINDOW, "e", [batch([message(1, DAY)])], ingested_at=INGESTED, options=options
    )
    assert list(staging.iterdir()) == []


def test_committed_at_is_recent_and_utc(local_store: ObjectStore) -> None:
    before = datetime.now(UTC)
    write_window(local_store, WINDOW, "e", [], ingested_at=INGESTED)
    manifest = read_manifest(local_store, WINDOW)
    assert manifest is not None
    assert before <= manifest.committed_at <= datetime.now(UTC)
    assert manifest.ingested_at == INGESTED


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("createdAt", "0000-01-01T00:00:00Z"),
        ("createdAt", "9999-12-31T23:59:59-00:01"),
        ("updatedAt", "00010101T000000+01:00"),
    ],
)
def test_an_out_of_range_timestamp_rejects_or_nulls_its_row_and_the_window_commits(
    store: ObjectStore, field: str, value: str
) -> None:
    bad = message(2, DAY, **{field: value})
    records = [message(1, DAY), bad, message(3, DAY)]
    result = write_window(store, WINDOW, "e", [batch(records)], ingested_at=INGESTED)
    manifest = read_manifest(store, WINDOW)
    assert manifest is not None and manifest.rows == result.rows
    if field == "createdAt":
        assert (result.rows, result.rejects) == (2, 1)
        (line,) = store.get_bytes(rejects_key(WINDOW)).decode().splitlines()
        rejected = json.loads(line)
        assert rejected["record"] == bad
        assert rejected["reason"].startswith(f"createdAt is not an ISO-8601 date-time: {value!r}")
    else:
        # A bad updatedAt loses nothing: the row is kept, the text stays in `extra`.
        assert (result.rows, result.rejects) == (3, 0)

"""Window commits to the Iceberg table, read back through the catalog as an engine would."""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from storage.commit import WriteOptions
from storage.iceberg.catalog import TableSource
from storage.iceberg.commit import IcebergTarget
from storage.layout import Window
from storage.objectstore import ObjectStore
from tests.storage.messages import DAY, INGESTED, WINDOW, batches_of, day_of_messages, message

TINY = WriteOptions(part_bytes=4096, row_group_bytes=2048)


class Refused(Exception):
    pass


def table_rows(tables: TableSource) -> pa.Table:
    return tables.load().scan().to_arrow()


def data_keys(store: ObjectStore) -> list[str]:
    return [info.key for info in store.list("iceberg/data/")]


def test_a_window_of_many_files_is_one_snapshot_with_exact_rows(
    archive: tuple[ObjectStore, TableSource],
) -> None:
    store, tables = archive
    messages = day_of_messages(300)
    result = IcebergTarget(store, tables).commit_window(
        WINDOW, "e1", batches_of(messages, 25), ingested_at=INGESTED, options=TINY
    )
    assert len(result.parts) > 3 and result.rows == 300
    table = tables.load()
    assert len(table.snapshots()) == 1
    summary = table.current_snapshot().summary
    assert summary is not None
    assert summary["chat-archiver.export-id"] == "e1"
    assert summary["chat-archiver.rows"] == "300"
    assert summary["chat-archiver.window-start"] == WINDOW.start.isoformat()
    rows = table_rows(tables)
    assert sorted(rows.column("id").to_pylist()) == sorted(m["id"] for m in messages)
    assert rows.schema.field("role").type == pa.string()


def test_committing_a_window_again_replaces_its_rows_and_overwrites_no_file(
    archive: tuple[ObjectStore, TableSource],
) -> None:
    store, tables = archive
    target = IcebergTarget(store, tables)
    messages = day_of_messages(200)
    target.commit_window(WINDOW, "e1", batches_of(messages, 20), ingested_at=INGESTED, options=TINY)
    first_files = set(data_keys(store))
    edited = [dict(m, content="edited") for m in messages[:150]]
    target.commit_window(WINDOW, "e2", batches_of(edited, 20), ingested_at=INGESTED, options=TINY)
    rows = table_rows(tables)
    assert rows.num_rows == 150
    assert pc.count_distinct(rows.column("id")).as_py() == 150
    assert set(rows.column("content").to_pylist()) == {"edited"}
    assert set(rows.column("_export_id").to_pylist()) == {"e2"}
    # The first commit's files are still there for readers of the older snapshot.
    assert first_files <= set(data_keys(store))
    assert len(tables.load().snapshots()) == 2


def test_files_of_a_commit_that_never_landed_are_deleted_by_the_next_commit(
    archive: tuple[ObjectStore, TableSource],
) -> None:
    store, tables = archive
    target = IcebergTarget(store, tables)
    messages = day_of_messages(100)

    def refuse(rows: int) -> None:
        if data_keys(store):  # the lease is lost once the files are uploaded
            raise Refused("lease lost")

    with pytest.raises(Refused):
        target.commit_window(
            WINDOW, "e1", batches_of(messages, 20), ingested_at=INGESTED, options=TINY, fence=refuse
        )
    orphans = set(data_keys(store))
    assert orphans and tables.load().current_snapshot() is None
    result = target.commit_window(
        WINDOW, "e2", batches_of(messages, 20), ingested_at=INGESTED, options=TINY
    )
    assert sorted(result.deleted) == sorted(orphans)
    assert not orphans & set(data_keys(store))
    assert table_rows(tables).num_rows == 100


def test_a_window_of_another_length_replaces_only_its_part_of_the_older_window(
    archive: tuple[ObjectStore, TableSource],
) -> None:
    store, tables = archive
    target = IcebergTarget(store, tables)
    messages = day_of_messages(240)
    target.commit_window(WINDOW, "day", batches_of(messages, 30), ingested_at=INGESTED)
    half = Window(DAY, DAY + timedelta(hours=12))
    first_half = [m for m in messages if m["createdAt"] < "2024-03-01T12"]
    edited = [dict(m, content="half") for m in first_half]
    target.commit_window(half, "half", batches_of(edited, 30), ingested_at=INGESTED)
    rows = table_rows(tables)
    assert rows.num_rows == 240
    assert pc.count_distinct(rows.column("id")).as_py() == 240
    by_export = pc.value_counts(rows.column("_export_id")).to_pylist()
    assert {entry["values"]: entry["counts"] for entry in by_export} == {
        "half": len(first_half),
        "day": 240 - len(first_half),
    }
    assert len(tables.load().snapshots()) == 2


def test_rows_outside_the_window_never_reach_the_table(
    archive: tuple[ObjectStore, TableSource],
) -> None:
    store, tables = archive
    target = IcebergTarget(store, tables)
    inside = [message(n, DAY + timedelta(hours=n)) for n in range(4)]
    stray = message(0, DAY + timedelta(days=1))  # same id, dated in the next window
    result = target.commit_window(
        WINDOW, "e", batches_of([*inside, stray], 10), ingested_at=INGESTED
    )
    assert result.rows == 4 and result.rejects == 1
    rows = table_rows(tables)
    assert sorted(rows.column("id").to_pylist()) == sorted(m["id"] for m in inside)

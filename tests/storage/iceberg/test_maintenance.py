"""Snapshot expiry and orphan cleanup keep the current rows and free what nothing references."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage.commit import WriteOptions
from storage.iceberg.catalog import TableSource
from storage.iceberg.commit import IcebergTarget
from storage.iceberg.maintenance import maintain
from storage.objectstore import ObjectStore
from tests.storage.messages import INGESTED, WINDOW, batches_of, day_of_messages

SMALL = WriteOptions(part_bytes=8192, row_group_bytes=4096)


class Refused(Exception):
    pass


def data_keys(store: ObjectStore) -> set[str]:
    return {info.key for info in store.list("iceberg/data/")}


def test_expiry_frees_the_replaced_commit_but_not_while_its_window_is_in_progress(
    archive: tuple[ObjectStore, TableSource],
) -> None:
    store, tables = archive
    target = IcebergTarget(store, tables)
    messages = day_of_messages(120)
    target.commit_window(
        WINDOW, "e1", batches_of(messages, 20), ingested_at=INGESTED, options=SMALL
    )
    first = data_keys(store)
    target.commit_window(
        WINDOW, "e2", batches_of(messages, 20), ingested_at=INGESTED, options=SMALL
    )
    second = data_keys(store) - first

    def refuse(rows: int) -> None:
        if data_keys(store):  # the lease is lost once the files are uploaded
            raise Refused("lease lost")

    with pytest.raises(Refused):
        target.commit_window(
            WINDOW,
            "e3",
            batches_of(messages, 20),
            ingested_at=INGESTED,
            options=SMALL,
            fence=refuse,
        )
    in_progress = data_keys(store) - first - second
    later = datetime.now(UTC) + timedelta(seconds=1)

    # While the window is being processed, none of its files is touched.
    report = maintain(tables.load(), retention=timedelta(0), now=later, busy={WINDOW})
    table = tables.load()
    assert report.expired_snapshots == 1 and len(table.snapshots()) == 1
    assert report.deleted_files == []
    assert table.scan().to_arrow().num_rows == 120

    report = maintain(table, retention=timedelta(0), now=later, busy=set())
    assert sorted(report.deleted_files) == sorted(first | in_progress)
    assert data_keys(store) == second
    assert tables.load().scan().to_arrow().num_rows == 120

"""`verify` of the Iceberg table: its current snapshot against the ledger and the store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.conversions import from_bytes
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table
from pyiceberg.types import TimestamptzType

from storage.iceberg.fileio import StoreFileIO
from storage.iceberg.schema import ICEBERG_SCHEMA
from storage.layout import Window
from storage.ledger import WindowRecord
from storage.verify import Problem
from storage.verify_table import ever_committed, id_problems

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_START_ID = ICEBERG_SCHEMA.find_field("_window_start").field_id
_END_ID = ICEBERG_SCHEMA.find_field("_window_end").field_id


def _moment(data_file: DataFile, field_id: int, upper: bool) -> datetime | None:
    bounds = data_file.upper_bounds if upper else data_file.lower_bounds
    raw = (bounds or {}).get(field_id)
    if raw is None:
        return None
    return _EPOCH + timedelta(microseconds=int(from_bytes(TimestamptzType(), raw)))


def file_window(data_file: DataFile) -> Window | None:
    """The window a data file's rows were exported in (every row of a file has the same)."""
    start, start_high = _moment(data_file, _START_ID, False), _moment(data_file, _START_ID, True)
    end, end_high = _moment(data_file, _END_ID, False), _moment(data_file, _END_ID, True)
    if start is None or end is None or start != start_high or end != end_high:
        return None
    return Window(start, end)


def snapshot_problems(
    table: Table, records: list[WindowRecord], since: datetime | None
) -> Iterator[Problem]:
    """The current snapshot's rows per window against the ledger, its files against the
    store, and ids across the whole snapshot."""
    file_io = table.io
    assert isinstance(file_io, StoreFileIO)
    rows: dict[Window, int] = {}
    files = [task.file for task in table.scan().plan_files()]
    for data_file in files:
        window = file_window(data_file)
        key = file_io.key(data_file.file_path)
        if window is None:
            yield Problem(key, "snapshot", "a data file whose rows come from several windows")
            continue
        rows[window] = rows.get(window, 0) + data_file.record_count
        size = file_io.store.size(key)
        if size is None:
            yield Problem(key, "missing", "the current snapshot lists this file; it is not there")
        elif size != data_file.file_size_in_bytes:
            yield Problem(
                key, "size", f"{size} bytes, the snapshot says {data_file.file_size_in_bytes}"
            )
    live = {record.window: record for record in ever_committed(records)}
    # A replaced window's rows stay until the windows replacing it have all committed.
    ledger = live | {r.window: r for r in records if r.committed_at is not None}
    for window, count in sorted(rows.items()):
        if since is not None and window.end <= since:
            continue
        record = ledger.get(window)
        if record is None:
            yield Problem(
                window.name,
                "snapshot",
                f"{count} rows of {window}, a window the ledger never committed",
            )
        elif record.rows is not None and record.rows != count and record.state != "replaced":
            yield Problem(
                window.name,
                "snapshot",
                f"{count} rows of {window} in the current snapshot; "
                f"the ledger committed {record.rows}",
            )
    for window, record in sorted(live.items()):
        if since is not None and window.end <= since:
            continue
        if record.rows and window not in rows and record.state != "replaced":
            yield Problem(
                window.name,
                "snapshot",
                f"the ledger committed {record.rows} rows of {window}; "
                "the current snapshot has none",
            )
    yield from id_problems((file_io.key(f.file_path), _ids(file_io, f)) for f in files)


def _ids(file_io: StoreFileIO, data_file: DataFile) -> Iterator[pa.Array]:
    """The file's ids, a row group at a time (a missing file is reported above)."""
    try:
        with file_io.new_input(data_file.file_path).open() as stream:
            source = pq.ParquetFile(stream)
            for group in range(source.num_row_groups):
                yield source.read_row_group(group, columns=["id"]).column("id").combine_chunks()
    except (FileNotFoundError, OSError):
        return

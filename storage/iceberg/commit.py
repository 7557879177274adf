"""Commits one window to the Iceberg table: one snapshot that replaces the window's rows.

The rows are staged exactly as for the plain layout (streamed into local Parquet parts,
deduplicated, rows outside the window rejected), then uploaded under names unique to this
write, so a file a snapshot references is never overwritten. One catalog commit then swaps
them in: every file whose rows all lie in the window is removed, the rare file that holds
rows on both sides of a window bound (left by a window of another length) is rewritten
without the window's rows, and the new files are added, all in one OVERWRITE snapshot. A
reader of the current snapshot sees the window whole or not at all; a crash before the
commit leaves the previous snapshot current and only unreferenced files behind, which the
next commit of the window (or `maintain`) deletes.

Commits of other windows by other replicas are retried: the catalog refuses a commit whose
base is no longer current, and the replacement is worked out again on the new base.
"""

from __future__ import annotations

import logging
import random
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.conversions import from_bytes
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.io.pyarrow import (
    compute_statistics_plan,
    data_file_statistics_from_parquet_metadata,
    parquet_path_to_id_mapping,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.table import Table
from pyiceberg.types import TimestamptzType

from storage.commit import CommitResult, PartInfo, Staged, WriteOptions, stage
from storage.iceberg.catalog import IcebergError, TableSource
from storage.iceberg.fileio import StoreFileIO
from storage.iceberg.orphans import delete_window_orphans
from storage.iceberg.schema import CREATED_AT_ID, DATA_DIR, FILE_SCHEMA, PARTITION_NAME
from storage.layout import Window, rejects_key
from storage.objectstore import ObjectStore
from storage.parquet_parts import parquet_writer
from storage.records import Lineage
from storage.schema import STREAM
from storage.target import DEFAULT_OPTIONS, Fence

log = logging.getLogger("chat_archiver.iceberg")

PROPERTY_PREFIX = "chat-archiver."
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class CommitConflict(IcebergError):
    """Other commits kept winning the race for the table; the window is tried again later."""


@dataclass(frozen=True)
class Replacement:
    """What one snapshot does to the table: files removed, files added."""

    removed: list[DataFile]
    added: list[DataFile]


def data_prefix(day: date) -> str:
    return f"{DATA_DIR}/{PARTITION_NAME}={day.isoformat()}/"


def window_file_prefix(day: date, window: Window) -> str:
    """Every data file a commit of `window` writes in partition `day` starts with this."""
    return f"{data_prefix(day)}{window.name}-"


def summary_properties(
    window: Window, export_id: str, rows: int, rejects: int, write_id: str
) -> dict[str, str]:
    return {
        f"{PROPERTY_PREFIX}window-start": window.start.isoformat(),
        f"{PROPERTY_PREFIX}window-end": window.end.isoformat(),
        f"{PROPERTY_PREFIX}export-id": export_id,
        f"{PROPERTY_PREFIX}rows": str(rows),
        f"{PROPERTY_PREFIX}rejects": str(rejects),
        f"{PROPERTY_PREFIX}write-id": write_id,
    }


class IcebergTarget:
    """The commit target of ARCHIVER_TABLE_FORMAT=iceberg."""

    def __init__(
        self,
        store: ObjectStore,
        tables: TableSource,
        *,
        max_attempts: int = 20,
        stream: str = STREAM,
    ) -> None:
        self.store = store
        self.tables = tables
        self.max_attempts = max_attempts
        self.stream = stream

    def describe(self) -> str:
        return f"iceberg table {self.tables.config.table} at {self.tables.config.location}"

    def commit_window(
        self,
        window: Window,
        export_id: str,
        batches: Iterable[pa.RecordBatch],
        *,
        ingested_at: datetime,
        options: WriteOptions = DEFAULT_OPTIONS,
        fence: Fence | None = None,
    ) -> CommitResult:
        if ingested_at.tzinfo is None:
            raise ValueError("ingested_at must be timezone-aware")
        lineage = Lineage(export_id, window, ingested_at.astimezone(UTC))
        write_id = uuid.uuid4().hex[:16]
        with tempfile.TemporaryDirectory(prefix="chat-archiver-", dir=options.tmp_dir) as tmp:
            work = Path(tmp)
            staged = stage(batches, lineage, work, options, FILE_SCHEMA)
            rows = sum(part.rows for part in staged.parts)
            if fence:
                fence(rows)
            table = self.tables.load()
            file_io = _store_io(table)
            added, parts = self._upload(table, file_io, window, write_id, staged)
            if fence:
                fence(rows)
            self._put_rejects(window, staged)
            properties = summary_properties(window, export_id, rows, staged.rejects, write_id)
            table, snapshot_id = self._commit(
                table, window, write_id, added, properties, work, fence, rows
            )
        deleted = delete_window_orphans(table, window, keep_write_id=write_id)
        pa.default_memory_pool().release_unused()
        reference = f"iceberg:{self.tables.config.table}@{snapshot_id}"
        log.info(
            "iceberg_snapshot_committed",
            extra={
                "window": str(window),
                "snapshot_id": snapshot_id,
                "rows": rows,
                "files": len(added),
            },
        )
        return CommitResult(reference, rows, staged.rejects, parts, deleted)

    def retire(self, window: Window) -> list[str]:
        """Nothing to do: each replacing window's snapshot already removed the rows in its time."""
        return []

    def _upload(
        self, table: Table, file_io: StoreFileIO, window: Window, write_id: str, staged: Staged
    ) -> tuple[list[DataFile], list[PartInfo]]:
        numbers: dict[date, int] = {}
        added, parts = [], []
        for part in sorted(staged.parts, key=lambda p: p.day):
            number = numbers.get(part.day, 0)
            numbers[part.day] = number + 1
            key = f"{window_file_prefix(part.day, window)}{write_id}-{number:04d}.parquet"
            location = f"{file_io.root}/{key}"
            file_io.upload(location, part.path)
            added.append(local_data_file(table, location, part.path))
            parts.append(PartInfo(key, part.path.stat().st_size, "", part.rows))
        return added, parts

    def _put_rejects(self, window: Window, staged: Staged) -> None:
        key = rejects_key(window, self.stream)
        if staged.rejects:
            self.store.put_file(key, staged.rejects_path)
        elif self.store.size(key) is not None:
            self.store.delete(key)

    def _commit(
        self,
        table: Table,
        window: Window,
        write_id: str,
        added: list[DataFile],
        properties: dict[str, str],
        work: Path,
        fence: Fence | None,
        rows: int,
    ) -> tuple[Table, int | None]:
        """Commits on `table` and returns it as committed, with the new snapshot's id."""
        for attempt in range(1, self.max_attempts + 1):
            if attempt > 1:
                table = self.tables.load()
            replacement = replace_window(table, window, added, write_id, work)
            if not replacement.removed and not replacement.added:
                # Nothing to say: an empty window over an empty range. No snapshot is made.
                if fence:
                    fence(rows)
                current = table.current_snapshot()
                return table, current.snapshot_id if current else None
            if fence:
                fence(rows)
            try:
                with table.transaction() as transaction:
                    update = transaction.update_snapshot(snapshot_properties=properties)
                    with update.overwrite() as overwrite:
                        for data_file in replacement.removed:
                            overwrite.delete_data_file(data_file)
                        for data_file in replacement.added:
                            overwrite.append_data_file(data_file)
            except CommitFailedException as error:
                delay = min(0.05 * 2**attempt, 2.0) * random.uniform(0.5, 1.0)
                log.info(
                    "iceberg_commit_retry",
                    extra={"window": str(window), "attempt": attempt, "reason": str(error)},
                )
                time.sleep(delay)
                continue
            snapshot = table.current_snapshot()
            return table, snapshot.snapshot_id if snapshot else None
        raise CommitConflict(
            f"window {window}: {self.max_attempts} commits in a row lost to concurrent commits"
        )


def _store_io(table: Table) -> StoreFileIO:
    if not isinstance(table.io, StoreFileIO):
        raise IcebergError("the table was loaded without the archive's FileIO")
    return table.io


def local_data_file(table: Table, location: str, path: Path) -> DataFile:
    """The DataFile entry of a Parquet file written locally and uploaded to `location`,
    with statistics from its footer (no read back from the store)."""
    metadata = pq.read_metadata(path)
    schema = table.schema()
    statistics = data_file_statistics_from_parquet_metadata(
        parquet_metadata=metadata,
        stats_columns=compute_statistics_plan(schema, table.metadata.properties),
        parquet_column_mapping=parquet_path_to_id_mapping(schema),
    )
    return DataFile.from_args(
        content=DataFileContent.DATA,
        file_path=location,
        file_format=FileFormat.PARQUET,
        partition=statistics.partition(table.metadata.spec(), schema),
        file_size_in_bytes=path.stat().st_size,
        sort_order_id=None,
        spec_id=table.metadata.default_spec_id,
        equality_ids=None,
        key_metadata=None,
        **statistics.to_serialized_dict(),
    )


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def created_at_bounds(data_file: DataFile) -> tuple[int, int] | None:
    lower = (data_file.lower_bounds or {}).get(CREATED_AT_ID)
    upper = (data_file.upper_bounds or {}).get(CREATED_AT_ID)
    if lower is None or upper is None:
        return None
    kind = TimestamptzType()
    return int(from_bytes(kind, lower)), int(from_bytes(kind, upper))


def range_filter(window: Window) -> str:
    """The rows of the window, as a pyiceberg row filter."""
    return f"created_at >= '{window.start.isoformat()}' AND created_at < '{window.end.isoformat()}'"


def files_in_range(table: Table, window: Window) -> Iterator[DataFile]:
    """Data files of the current snapshot that may hold rows with created_at in the window."""
    if table.current_snapshot() is None:
        return
    for task in table.scan(row_filter=range_filter(window)).plan_files():
        yield task.file


def replace_window(
    table: Table, window: Window, added: list[DataFile], write_id: str, work: Path
) -> Replacement:
    """The files to remove and add so that the window's range holds exactly `added`."""
    start, end = _micros(window.start), _micros(window.end)
    removed: list[DataFile] = []
    rewritten: list[DataFile] = []
    for number, data_file in enumerate(files_in_range(table, window)):
        bounds = created_at_bounds(data_file)
        if bounds is not None and (bounds[1] < start or bounds[0] >= end):
            continue
        removed.append(data_file)
        if bounds is not None and bounds[0] >= start and bounds[1] < end:
            continue
        kept = _rewrite_outside(table, data_file, window, write_id, number, work)
        if kept is not None:
            rewritten.append(kept)
    return Replacement(removed, rewritten + added)


def _rewrite_outside(
    table: Table, data_file: DataFile, window: Window, write_id: str, number: int, work: Path
) -> DataFile | None:
    """A copy of `data_file` without the rows in the window, or None if none are left.

    Named after the committing window, so only that window's commits (one at a time, under
    its lease) ever clean up after it."""
    file_io = _store_io(table)
    source = work / f"rewrite-{number}.source.parquet"
    file_io.store.download_file(file_io.key(data_file.file_path), source)
    rows = pq.read_table(source, schema=FILE_SCHEMA)
    created = rows.column("created_at")
    inside = pc.and_(
        pc.greater_equal(created, pa.scalar(window.start, created.type)),
        pc.less(created, pa.scalar(window.end, created.type)),
    )
    rows = rows.filter(pc.invert(inside))
    source.unlink()
    if rows.num_rows == 0:
        return None
    target = work / f"rewrite-{number}.parquet"
    with pa.OSFile(str(target), "wb") as sink:
        writer = parquet_writer(sink, FILE_SCHEMA)
        writer.write_table(rows.cast(FILE_SCHEMA))
        writer.close()
    day = rows.column("created_at")[0].as_py().date()
    key = f"{window_file_prefix(day, window)}{write_id}-r{number:04d}.parquet"
    location = f"{file_io.root}/{key}"
    file_io.upload(location, target)
    data_file_out = local_data_file(table, location, target)
    target.unlink()
    return data_file_out

"""Local Parquet part files, before they are uploaded.

Rows are buffered per date partition until about `row_group_bytes` (measured as Arrow's
in-memory size) and then written as one row group; a file is closed once it reaches about
`part_bytes` on disk. The buffers of all partitions together are capped at
`row_group_bytes`, so memory stays bounded however many dates a window's rows span.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage.schema import MESSAGE_SCHEMA

_ROLE = MESSAGE_SCHEMA.get_field_index("role")
# Buffered rows hold `role` as plain strings; it is dictionary-encoded once per row group.
_BUFFERED_SCHEMA = MESSAGE_SCHEMA.set(_ROLE, pa.field("role", pa.string()))

# Columns with few distinct values per row group; the rest (ids, text) are mostly unique and
# would only pay for a dictionary that Parquet then abandons.
DICTIONARY_COLUMNS = [
    "chat_id",
    "chat_thread_id",
    "role",
    "sender_id",
    "_export_id",
    "_window_start",
    "_window_end",
    "_ingested_at",
]


def parquet_writer(sink: pa.NativeFile, schema: pa.Schema = MESSAGE_SCHEMA) -> pq.ParquetWriter:
    """`schema` is MESSAGE_SCHEMA, or the Iceberg data files' variant of it (field ids, `role`
    as plain strings: Parquet dictionary-encodes it either way)."""
    return pq.ParquetWriter(
        sink,
        schema,
        compression="zstd",
        write_statistics=True,
        use_dictionary=DICTIONARY_COLUMNS,
    )


@dataclass
class LocalPart:
    day: date
    path: Path
    rows: int = 0


@dataclass(frozen=True)
class Placement:
    """Where a written batch's first row landed: the part's index and its row offset there."""

    part: int
    offset: int


@dataclass
class _OpenPart:
    index: int
    sink: pa.NativeFile
    writer: pq.ParquetWriter
    buffer: list[pa.RecordBatch] = field(default_factory=list)
    buffered_bytes: int = 0


class PartWriter:
    """Writes MESSAGE_SCHEMA batches of one date each into a series of local files per date."""

    def __init__(
        self,
        directory: Path,
        part_bytes: int,
        row_group_bytes: int,
        file_schema: pa.Schema = MESSAGE_SCHEMA,
    ) -> None:
        self.directory = directory
        self.file_schema = file_schema
        self.part_bytes = part_bytes
        self.row_group_bytes = row_group_bytes
        self.parts: list[LocalPart] = []
        self._open: dict[date, _OpenPart] = {}
        self._buffered_bytes = 0

    def write(self, day: date, batch: pa.RecordBatch) -> Placement:
        current = self._open.get(day) or self._start(day)
        part = self.parts[current.index]
        placement = Placement(current.index, part.rows)
        part.rows += batch.num_rows
        current.buffer.append(_compact(batch))
        current.buffered_bytes += batch.nbytes
        self._buffered_bytes += batch.nbytes
        if current.buffered_bytes >= self.row_group_bytes:
            self._flush(day)
        while self._buffered_bytes > self.row_group_bytes:
            largest = max(self._open, key=lambda d: self._open[d].buffered_bytes)
            self._flush(largest)
        return placement

    def close(self) -> list[LocalPart]:
        for day in list(self._open):
            self._flush(day)
            if day in self._open:
                self._finish(day)
        return self.parts

    def abort(self) -> None:
        """Closes open files after a failure; the caller removes the directory."""
        for current in self._open.values():
            current.writer.close()
            current.sink.close()
        self._open.clear()

    def _start(self, day: date) -> _OpenPart:
        index = len(self.parts)
        path = self.directory / f"part-{index:06d}.parquet"
        self.parts.append(LocalPart(day, path))
        sink = pa.OSFile(str(path), "wb")
        current = _OpenPart(index, sink, parquet_writer(sink, self.file_schema))
        self._open[day] = current
        return current

    def _flush(self, day: date) -> None:
        current = self._open[day]
        if current.buffer:
            table = pa.Table.from_batches(current.buffer, _BUFFERED_SCHEMA)
            current.buffer = []
            role_field = self.file_schema.field(_ROLE)
            if pa.types.is_dictionary(role_field.type):
                roles = pc.dictionary_encode(table.column(_ROLE).combine_chunks())
                table = table.set_column(_ROLE, role_field, roles)
            current.writer.write_table(table, row_group_size=max(table.num_rows, 1))
            del table
            # Give the row group's memory back now, before the next one fills up: Arrow's
            # allocator would otherwise keep much of it (docs/performance.md).
            pa.default_memory_pool().release_unused()
            self._buffered_bytes -= current.buffered_bytes
            current.buffered_bytes = 0
        if current.sink.tell() >= self.part_bytes:
            self._finish(day)

    def _finish(self, day: date) -> None:
        current = self._open.pop(day)
        current.writer.close()
        current.sink.close()


def _compact(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch copied into a single allocation, with `role` as plain strings.

    Buffered rows outlive the many small buffers they were decoded and normalized into; left
    there, they pin the allocator's pages, and the process keeps far more memory than it
    holds (tens of MB at a million rows, see docs/performance.md). One block per batch is
    returned whole when the row group is written.
    """
    role = batch.column(_ROLE).cast(pa.string())
    plain = batch.set_column(_ROLE, _BUFFERED_SCHEMA.field(_ROLE), role)
    return pa.ipc.read_record_batch(plain.serialize(), _BUFFERED_SCHEMA)


def rewrite_without(
    part: LocalPart, drop_offsets: list[int], file_schema: pa.Schema = MESSAGE_SCHEMA
) -> None:
    """Rewrites a part without the rows at `drop_offsets` (sorted), one row group at a time.

    A part left with no rows is removed and its `rows` set to 0.
    """
    source = pq.ParquetFile(part.path)
    tmp = part.path.with_suffix(".rewrite")
    kept = 0
    start = 0
    with pa.OSFile(str(tmp), "wb") as sink:
        writer = parquet_writer(sink, file_schema)
        for group in range(source.num_row_groups):
            table = source.read_row_group(group)
            rows = table.num_rows
            drop = drop_offsets[
                bisect_left(drop_offsets, start) : bisect_left(drop_offsets, start + rows)
            ]
            if drop:
                ones = pa.repeat(pa.scalar(1, pa.int64()), rows)
                positions = pc.add(pc.cumulative_sum(ones), start - 1)
                table = table.filter(pc.invert(pc.is_in(positions, pa.array(drop, pa.int64()))))
            start += rows
            if table.num_rows:
                writer.write_table(table, row_group_size=table.num_rows)
                kept += table.num_rows
        writer.close()
    source.close()
    if kept:
        os.replace(tmp, part.path)
    else:
        tmp.unlink()
        part.path.unlink()
    part.rows = kept

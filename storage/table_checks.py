"""Checks of the archive as a table: no id twice, no gap between committed windows.

What `chat-archiver verify` adds to the manifest checks, for both table formats. Ids are
bucketed on disk by their first characters, so memory stays bounded by one bucket, not by
the archive.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from storage.layout import Window

_BUCKET_SCHEMA = pa.schema([pa.field("id", pa.string()), pa.field("source", pa.int32())])
# Ids held in memory before they are spread over bucket files.
_IN_MEMORY_IDS = 2_000_000


@dataclass(frozen=True)
class Duplicate:
    id: str
    sources: tuple[str, ...]
    """Where each copy is (a part key, a data file), one entry per copy."""


def duplicate_ids(
    sources: Iterable[tuple[str, Iterable[pa.Array]]], tmp: Path
) -> Iterator[Duplicate]:
    """Ids that occur more than once across all `sources` (name, id arrays)."""
    names: list[str] = []
    buffered: list[pa.RecordBatch] = []
    held = 0
    writers: dict[str, ipc.RecordBatchFileWriter] = {}
    for name, arrays in sources:
        names.append(name)
        for ids in arrays:
            source = pa.repeat(pa.scalar(len(names) - 1, pa.int32()), len(ids))
            buffered.append(
                pa.RecordBatch.from_arrays([ids.cast(pa.string()), source], schema=_BUCKET_SCHEMA)
            )
            held += len(ids)
            if held > _IN_MEMORY_IDS:
                _spill(buffered, writers, tmp)
                buffered, held = [], 0
    if not writers:
        yield from _duplicates_in(pa.Table.from_batches(buffered, _BUCKET_SCHEMA), names)
        return
    _spill(buffered, writers, tmp)
    for writer in writers.values():
        writer.close()
    for bucket in sorted(writers):
        path = tmp / f"ids-{bucket}.arrow"
        with pa.memory_map(str(path)) as source:
            table = ipc.open_file(source).read_all()
        yield from _duplicates_in(table, names)
        path.unlink()


def _spill(
    batches: list[pa.RecordBatch], writers: dict[str, ipc.RecordBatchFileWriter], tmp: Path
) -> None:
    if not batches:
        return
    table = pa.Table.from_batches(batches, _BUCKET_SCHEMA)
    prefixes = pc.utf8_slice_codeunits(table.column("id"), 0, 2)
    for prefix in pc.unique(prefixes).to_pylist():
        key = "".join(char if char.isalnum() else "_" for char in (prefix or "")) or "_"
        writer = writers.get(key)
        if writer is None:
            writer = ipc.new_file(str(tmp / f"ids-{key}.arrow"), _BUCKET_SCHEMA)
            writers[key] = writer
        writer.write_table(table.filter(pc.equal(prefixes, prefix)))


def _duplicates_in(table: pa.Table, names: list[str]) -> Iterator[Duplicate]:
    if table.num_rows == 0:
        return
    counts = table.group_by("id").aggregate([("source", "list")])
    repeated = counts.filter(pc.greater(pc.list_value_length(counts.column("source_list")), 1))
    for row in repeated.to_pylist():
        yield Duplicate(row["id"], tuple(names[index] for index in row["source_list"]))


def coverage_gaps(committed: Iterable[Window], start: datetime | None) -> list[Window]:
    """The spans between `start` (or the first committed window) and the end of the last
    committed window that no committed window covers."""
    windows = sorted(committed)
    if not windows:
        return []
    cursor = start if start is not None and start < windows[0].start else windows[0].start
    gaps = []
    for window in windows:
        if window.start > cursor:
            gaps.append(Window(cursor, window.start))
        cursor = max(cursor, window.end)
    return gaps


def overlaps(committed: Iterable[Window]) -> list[tuple[Window, Window]]:
    """Pairs of committed windows that cover the same time (a message could be in both)."""
    windows = sorted(committed)
    found = []
    reach: Window | None = None
    for window in windows:
        if reach is not None and window.start < reach.end:
            found.append((reach, window))
        if reach is None or window.end > reach.end:
            reach = window
    return found

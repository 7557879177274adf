"""Writes one window of messages to the archive and commits it with its manifest.

The order is what makes re-processing safe: parts (deterministic names, so the same objects
are overwritten), then the rejects, then the manifest (the commit marker), then the deletion
of any part of this window that the manifest does not list.

An empty window (no rows) commits with a manifest that lists no parts: no empty Parquet file
is written, so readers never open a file for nothing, and the manifest still records that
the window was archived.

A row whose `created_at` lies outside the window goes to the window's rejects with the reason,
never into the table: the window that holds its `created_at` archives it, so no id is ever
written by two windows.
"""

from __future__ import annotations

import hashlib
import tempfile
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage.dedup import Fingerprints, IdIndex
from storage.layout import (
    Window,
    manifest_key,
    part_key,
    part_prefix_for_window,
    rejects_key,
    staging_prefix,
)
from storage.manifest import Manifest, ManifestError, PartInfo, read_manifest
from storage.objectstore import ObjectStore
from storage.parquet_parts import LocalPart, PartWriter, rewrite_without
from storage.records import Lineage, Reject, normalize_batch, reject_lines
from storage.schema import MESSAGE_SCHEMA, STREAM, UTC_MICROS

__all__ = [
    "CommitResult",
    "PartInfo",
    "Staged",
    "WriteOptions",
    "split_by_day",
    "stage",
    "write_window",
]

OUTSIDE_WINDOW = "createdAt lies outside the requested window"
# Rows outside the window are turned into rejects lines this many at a time, so an export that
# is all outside its window is written in bounded memory.
REJECT_ROWS = 8192


@dataclass(frozen=True)
class WriteOptions:
    part_bytes: int = 256 * 1024 * 1024
    """Roll to a new file once one reaches about this size on disk."""
    row_group_bytes: int = 64 * 1024 * 1024
    """Rows are buffered to about this in-memory (Arrow) size per row group; bounds memory."""
    tmp_dir: Path | None = None
    """Where parts are staged before upload; the system's temporary directory by default."""

    def __post_init__(self) -> None:
        if self.part_bytes <= 0 or self.row_group_bytes <= 0:
            raise ValueError(
                f"part_bytes ({self.part_bytes}) and row_group_bytes "
                f"({self.row_group_bytes}) must be positive"
            )


@dataclass(frozen=True)
class CommitResult:
    manifest_key: str
    rows: int
    rejects: int
    parts: list[PartInfo]
    deleted: list[str]


@dataclass
class Staged:
    """A window's rows as local Parquet parts, deduplicated, plus its rejects file."""

    parts: list[LocalPart]
    rejects: int
    rejects_path: Path
    outside_window: int
    duplicates: int = 0


def write_window(
    store: ObjectStore,
    window: Window,
    export_id: str,
    batches: Iterable[pa.RecordBatch],
    *,
    ingested_at: datetime,
    options: WriteOptions = WriteOptions(),
    stream: str = STREAM,
    fence: Callable[[int], None] | None = None,
) -> CommitResult:
    """Normalizes, deduplicates and writes `batches` as the window's parts, then commits.

    Nothing reaches the store until every batch has been read, so an error from `batches`
    (an undecodable file) leaves the archive as it was. A failure after the manifest is
    written (deleting stale parts) leaves the window committed; running again finishes it.

    `fence` is called with the window's row count before each object is written; whatever it
    raises stops the write there (a worker that lost its lease, a shrink the guard refuses).
    """
    if ingested_at.tzinfo is None:
        raise ValueError("ingested_at must be timezone-aware")
    lineage = Lineage(export_id, window, ingested_at.astimezone(UTC))
    with tempfile.TemporaryDirectory(prefix="chat-archiver-", dir=options.tmp_dir) as tmp:
        staged = stage(batches, lineage, Path(tmp), options)
        rows = sum(part.rows for part in staged.parts)

        def check() -> None:
            if fence is not None:
                fence(rows)

        try:
            previous = read_manifest(store, window, stream)
        except ManifestError:
            previous = None  # unreadable: it is about to be replaced, and cleanup lists anyway
        _clear_staging(store, window, stream)
        parts = _upload_parts(store, window, stream, staged.parts, check)
        deleted: list[str] = []
        key_for_rejects = rejects_key(window, stream)
        check()
        if staged.rejects:
            store.put_file(key_for_rejects, staged.rejects_path)
        elif store.size(key_for_rejects) is not None:
            store.delete(key_for_rejects)
            deleted.append(key_for_rejects)
        manifest = Manifest(
            window=window,
            export_id=export_id,
            committed_at=datetime.now(UTC),
            rows=sum(part.rows for part in parts),
            rejects=staged.rejects,
            parts=tuple(parts),
            stream=stream,
            ingested_at=lineage.ingested_at,
            rejects_key=key_for_rejects if staged.rejects else None,
            rows_outside_window=staged.outside_window,
            duplicates=staged.duplicates,
        )
        _promote(store, window, stream, parts, check)
        key = manifest_key(window, stream)
        check()
        store.put_bytes(key, manifest.to_json())
    _clear_staging(store, window, stream)
    deleted += _delete_stale(store, manifest, previous)
    # Arrow's allocator keeps what a large window freed; the process would start the next
    # window that much bigger (docs/performance.md).
    pa.default_memory_pool().release_unused()
    return CommitResult(key, manifest.rows, manifest.rejects, parts, deleted)


def split_by_day(batch: pa.RecordBatch) -> Iterator[tuple[date, pa.RecordBatch]]:
    """Splits a MESSAGE_SCHEMA batch by the UTC date of `created_at`, in date order."""
    days = batch.column("created_at").cast(pa.date32())
    bounds = pc.min_max(days)
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    if low is None:
        return
    if low == high:
        yield low, batch
        return
    for day in sorted(pc.unique(days).to_pylist()):
        yield day, batch.filter(pc.equal(days, pa.scalar(day, pa.date32())))


def stage(
    batches: Iterable[pa.RecordBatch],
    lineage: Lineage,
    tmp: Path,
    options: WriteOptions,
    file_schema: pa.Schema = MESSAGE_SCHEMA,
) -> Staged:
    """Writes local parts (in `file_schema`: MESSAGE_SCHEMA, possibly with field ids) and the
    rejects file; removes superseded duplicates and rejects rows outside the window."""
    writer = PartWriter(tmp, options.part_bytes, options.row_group_bytes, file_schema)
    prints = Fingerprints(tmp / "fingerprints.arrow")
    staged = Staged([], 0, tmp / "rejects.jsonl", 0)
    start = pa.scalar(lineage.window.start, pa.timestamp("us", tz="UTC"))
    end = pa.scalar(lineage.window.end, pa.timestamp("us", tz="UTC"))
    try:
        with staged.rejects_path.open("w", encoding="utf-8") as rejects_out:
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                rejects, pieces = _normalize(batch, lineage)
                for reject in rejects:
                    rejects_out.write(reject.to_json() + "\n")
                staged.rejects += len(rejects)
                for day, piece in pieces:
                    created = piece.column("created_at")
                    outside = pc.or_(pc.less(created, start), pc.greater_equal(created, end))
                    outside_count = pc.sum(outside).as_py() or 0
                    if outside_count:
                        outside_rows = piece.filter(outside)
                        for offset in range(0, outside_rows.num_rows, REJECT_ROWS):
                            lines = reject_lines(
                                outside_rows.slice(offset, REJECT_ROWS), OUTSIDE_WINDOW
                            )
                            rejects_out.write("".join(lines.to_pylist()))
                        staged.rejects += outside_count
                        staged.outside_window += outside_count
                        piece = piece.filter(pc.invert(outside))
                        if piece.num_rows == 0:
                            continue
                    for chunk in _row_group_slices(piece, options.row_group_bytes):
                        placement = writer.write(day, chunk)
                        prints.add(chunk.column("id"), placement.part, placement.offset)
        staged.parts = writer.close()
    except BaseException:
        writer.abort()
        prints.close()
        raise
    for part_index, offsets in _drops(staged.parts, prints.candidates()).items():
        staged.duplicates += len(offsets)
        rewrite_without(staged.parts[part_index], offsets, file_schema)
    staged.parts = [part for part in staged.parts if part.rows]
    return staged


def _row_group_slices(batch: pa.RecordBatch, limit: int) -> Iterator[pa.RecordBatch]:
    """A decoded batch larger than a row group, cut so that files roll at their size."""
    if batch.nbytes <= limit or batch.num_rows < 2:
        yield batch
        return
    count = min(-(-batch.nbytes // limit), batch.num_rows)
    step = -(-batch.num_rows // count)
    for offset in range(0, batch.num_rows, step):
        yield batch.slice(offset, step)


# What a value a library cannot hold raises (an out-of-range date, a type it cannot convert).
_ROW_ERRORS = (pa.ArrowException, ValueError, OverflowError, TypeError, KeyError)


def _normalize(
    batch: pa.RecordBatch, lineage: Lineage
) -> tuple[list[Reject], list[tuple[date, pa.RecordBatch]]]:
    """The batch's rejects and its rows split by day. If a value breaks the batch as a whole,
    the batch is done again row by row and each row that still breaks is rejected with the
    error: one bad row never holds back its window."""
    try:
        normalized = normalize_batch(batch, lineage)
        return normalized.rejects, list(split_by_day(normalized.batch))
    except _ROW_ERRORS:
        pass  # find the row(s) below
    rejects: list[Reject] = []
    pieces: list[tuple[date, pa.RecordBatch]] = []
    for index in range(batch.num_rows):
        row = batch.slice(index, 1)
        try:
            normalized = normalize_batch(row, lineage)
            row_pieces = list(split_by_day(normalized.batch))
        except _ROW_ERRORS as error:
            reason = f"cannot be archived: {type(error).__name__}: {error}"
            rejects.append(Reject(reason, row.to_pylist()[0]))
            continue
        rejects += normalized.rejects
        pieces += row_pieces
    return rejects, pieces


def _drops(parts: list[LocalPart], candidates: list[tuple[int, int, int]]) -> dict[int, list[int]]:
    """The rows to drop, decided on the candidate rows' ids and updated_at read back from
    the parts (`candidates`: (part, offset, rows) runs in arrival order)."""
    if not candidates:
        return {}
    wanted: dict[int, list[int]] = {}
    for part, offset, rows in candidates:
        wanted.setdefault(part, []).extend(range(offset, offset + rows))
    columns = {part: _read_rows(parts[part].path, offsets) for part, offsets in wanted.items()}
    index = IdIndex()
    taken = dict.fromkeys(wanted, 0)
    for part, offset, rows in candidates:
        start, taken[part] = taken[part], taken[part] + rows
        ids, updated_at = columns[part]
        index.add(ids.slice(start, rows), updated_at.slice(start, rows), part, offset)
    return index.drops()


def _read_rows(path: Path, offsets: list[int]) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    """The id and updated_at of the rows at `offsets` (sorted) of a part, a row group at a time."""
    source = pq.ParquetFile(path)
    ids, updated = [], []
    start = 0
    for group in range(source.num_row_groups):
        rows = source.metadata.row_group(group).num_rows
        low, high = bisect_left(offsets, start), bisect_left(offsets, start + rows)
        if low < high:
            table = source.read_row_group(group, columns=["id", "updated_at"])
            chosen = pa.array(offsets[low:high], pa.int64())
            picked = table.take(pc.subtract(chosen, start))
            ids += picked.column("id").chunks
            updated += picked.column("updated_at").chunks
        start += rows
    source.close()
    return pa.chunked_array(ids, pa.string()), pa.chunked_array(updated, UTC_MICROS)


def _upload_parts(
    store: ObjectStore,
    window: Window,
    stream: str,
    local: list[LocalPart],
    check: Callable[[], None],
) -> list[PartInfo]:
    """Uploads parts numbered 0000.. per date, in the order they were written, under the
    window's staging prefix; the PartInfo keys are where `_promote` puts them."""
    numbers: dict[date, int] = {}
    uploaded = []
    for part in sorted(local, key=lambda p: p.day):
        number = numbers.get(part.day, 0)
        numbers[part.day] = number + 1
        key = part_key(part.day, window, number, stream)
        with part.path.open("rb") as source:
            digest = hashlib.file_digest(source, "sha256").hexdigest()
        size = part.path.stat().st_size
        check()
        store.put_file(staging_prefix(window, stream) + key, part.path)
        uploaded.append(PartInfo(key, size, digest, part.rows))
    return uploaded


def _promote(
    store: ObjectStore,
    window: Window,
    stream: str,
    parts: list[PartInfo],
    check: Callable[[], None],
) -> None:
    """Copies the uploaded parts into the table's prefix, within the store. Only now does a
    reader that globs `{stream}/` see any of them: for the time a copy takes, not an upload."""
    for part in parts:
        check()
        store.copy(staging_prefix(window, stream) + part.key, part.key)


def _clear_staging(store: ObjectStore, window: Window, stream: str) -> None:
    """Removes the window's staged uploads: this commit's once promoted, or a crashed one's."""
    for info in list(store.list(staging_prefix(window, stream))):
        store.delete(info.key)


def _delete_stale(store: ObjectStore, manifest: Manifest, previous: Manifest | None) -> list[str]:
    """Deletes this window's parts that the new manifest does not list.

    Looks in the partitions the new and previous manifests name and every date the window
    itself covers (where an attempt that crashed before its manifest would have left parts).
    """
    window, stream = manifest.window, manifest.stream
    keep = {part.key for part in manifest.parts}
    days = set(manifest.dates) | set(_window_days(window))
    candidates: set[str] = set()
    if previous is not None:
        days |= set(previous.dates)
        candidates |= {part.key for part in previous.parts}
    for day in sorted(days):
        candidates |= {info.key for info in store.list(part_prefix_for_window(day, window, stream))}
    deleted = sorted(candidates - keep)
    for key in deleted:
        store.delete(key)
    return deleted


def _window_days(window: Window) -> Iterator[date]:
    day = window.start.astimezone(UTC).date()
    last = (window.end.astimezone(UTC) - timedelta(microseconds=1)).date()
    while day <= last:
        yield day
        day += timedelta(days=1)

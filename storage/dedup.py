"""Finds the rows to drop so that each message `id` appears once in a window.

Of the rows sharing an id, the one with the latest `updated_at` stays (a null `updated_at`
counts as older than any value); on a tie, the row that arrived later stays, because an
export that repeats a message usually repeats it with its newer state.

A large window's ids do not stay in memory while it is written: `Fingerprints` keeps 8 bytes
a row, and only rows whose fingerprints repeat (the duplicates, and the odd collision) have
their ids and `updated_at` read back into an `IdIndex`, which decides exactly. Hash tables over
millions of values cost several times the values' own size, so both look at large inputs in
buckets, each with a table of its own.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from itertools import accumulate
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from storage.schema import UTC_MICROS

BUCKET_ROWS = 256 * 1024


class IdIndex:
    def __init__(self, bucket_rows: int = BUCKET_ROWS) -> None:
        self._ids: list[pa.Array] = []
        self._updated: list[pa.Array] = []
        self._spans: list[tuple[int, int, int]] = []
        self._bucket_rows = bucket_rows
        self.rows = 0

    def add(
        self,
        ids: pa.Array | pa.ChunkedArray,
        updated_at: pa.Array | pa.ChunkedArray,
        part: int,
        offset: int,
    ) -> None:
        """Records rows that were written to `part` starting at row `offset`, in arrival order."""
        self._ids += ids.chunks if isinstance(ids, pa.ChunkedArray) else [ids]
        self._updated += (
            updated_at.chunks if isinstance(updated_at, pa.ChunkedArray) else [updated_at]
        )
        self._spans.append((part, offset, len(ids)))
        self.rows += len(ids)

    def drops(self) -> dict[int, list[int]]:
        """For each part that holds superseded rows, the sorted row offsets to drop."""
        if not self.rows:
            return {}
        ids = pa.chunked_array(self._ids, pa.string())
        repeated = self._repeated(ids)
        if not len(repeated):
            return {}
        # Arrival order is the order rows were added; only rows of repeated ids are sorted.
        candidates = pc.indices_nonzero(pc.is_in(ids, value_set=repeated)).cast(pa.int64())
        updated_at = pa.chunked_array(self._updated, UTC_MICROS).take(candidates)
        table = pa.table(
            {
                "id": ids.take(candidates),
                # Sorting on "has a value" first puts null updated_at before any value.
                "dated": pc.is_valid(updated_at),
                "updated_at": updated_at,
                "seq": candidates,
            }
        )
        order = pc.sort_indices(
            table,
            sort_keys=[
                ("id", "ascending"),
                ("dated", "ascending"),
                ("updated_at", "ascending"),
                ("seq", "ascending"),
            ],
        )
        sorted_ids = table.column("id").take(order)
        superseded = pa.concat_arrays(
            [
                *pc.equal(sorted_ids[:-1], sorted_ids[1:]).chunks,
                pa.array([False]),
            ]
        )
        dropped = table.column("seq").take(order).filter(superseded).to_pylist()
        out: dict[int, list[int]] = {}
        for part, offset in self._locate(dropped):
            out.setdefault(part, []).append(offset)
        return {part: sorted(offsets) for part, offsets in out.items()}

    def _repeated(self, ids: pa.ChunkedArray) -> pa.Array:
        """The ids that occur more than once."""
        found = []
        for bucket in _buckets(ids, self._bucket_rows):
            if len(pc.unique(bucket)) < len(bucket):
                counts = pc.value_counts(bucket)
                found.append(counts.field("values").filter(pc.greater(counts.field("counts"), 1)))
        return pa.concat_arrays(found) if found else pa.array([], pa.string())

    def _locate(self, positions: list[int]) -> Iterator[tuple[int, int]]:
        """Maps arrival positions to (part, row offset in that part)."""
        starts = list(accumulate((rows for _, _, rows in self._spans), initial=0))
        for position in positions:
            span = bisect_right(starts, position) - 1
            part, offset, _rows = self._spans[span]
            yield part, offset + position - starts[span]


def _buckets(ids: pa.ChunkedArray, bucket_rows: int) -> Iterator[pa.ChunkedArray]:
    """The ids in parts of about `bucket_rows` or more, equal ids always in the same part."""
    if len(ids) <= bucket_rows:
        yield ids
        return
    mask = (1 << (-(-len(ids) // bucket_rows) - 1).bit_length()) - 1  # buckets - 1, a power of 2
    last = pc.utf8_slice_codeunits(ids, -1).combine_chunks()
    keys = pc.bit_wise_and(pc.dictionary_encode(last).indices, mask)
    for bucket in range(mask + 1):
        yield ids.filter(pc.equal(keys, bucket))


# Odd 64-bit constants (as signed integers) that spread each 8-byte word over the whole hash.
_MIXERS = (-7046029254386353131, -4417276706812531889, 1609587929392839161, -8796714831421723037)
_PAD = pa.scalar(b"\0" * 16, pa.binary())
_Run = tuple[int, int, int]  # (part, offset, rows)
_PRINTS = pa.schema([pa.field("fingerprint", pa.int64())])
_SPILL_ROWS = 256 * 1024  # fingerprints held before they are appended to the file


def fingerprints(ids: pa.Array) -> pa.Array:
    """A 64-bit fingerprint (int64) of each id, from its length and its first and last 16
    bytes: equal ids have equal fingerprints, and random ids practically never share one."""
    raw = ids.cast(pa.binary())
    lengths = pc.binary_length(raw)
    if len(raw) and (pc.min(lengths).as_py() or 0) >= len(_PAD.as_py()):
        head = tail = raw  # long enough to slice as they are (UUIDs, usually)
    else:
        head = pc.binary_join_element_wise(raw, _PAD, b"")
        tail = pc.binary_join_element_wise(_PAD, raw, b"")
    words = [
        pc.binary_slice(head, 0, 8),
        pc.binary_slice(head, 8, 16),
        pc.binary_slice(tail, -16, -8),
        pc.binary_slice(tail, -8),
    ]
    mixed = lengths.cast(pa.int64())
    for word, mixer in zip(words, _MIXERS, strict=True):
        value = word.cast(pa.binary(8)).view(pa.int64())
        mixed = pc.bit_wise_xor(pc.multiply(mixed, mixer), value)
    return mixed


class Fingerprints:
    """The fingerprints of every written row, in arrival order, kept in a file at `path`
    (8 bytes a row) so that memory does not grow with the window."""

    def __init__(self, path: Path, bucket_rows: int = BUCKET_ROWS) -> None:
        self._path = path
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = pa.ipc.new_stream(self._sink, _PRINTS)
        self._pending: list[pa.Array] = []
        self._pending_rows = 0
        self._spans: list[_Run] = []
        self._bucket_rows = bucket_rows
        self.rows = 0

    def add(self, ids: pa.Array, part: int, offset: int) -> None:
        """Records rows that were written to `part` starting at row `offset`."""
        self._pending.append(fingerprints(ids))
        self._pending_rows += len(ids)
        self._spans.append((part, offset, len(ids)))
        self.rows += len(ids)
        if self._pending_rows >= _SPILL_ROWS:
            self._spill()

    def close(self) -> None:
        """Finishes the file; `candidates` does it too."""
        if not self._sink.closed:
            self._spill()
            self._writer.close()
            self._sink.close()

    def candidates(self) -> list[_Run]:
        """The rows whose fingerprints repeat, as runs in arrival order; rows outside them
        have ids that occur once."""
        self.close()
        if not self.rows:
            return []
        count = -(-self.rows // self._bucket_rows)
        mask = (1 << (count - 1).bit_length()) - 1  # buckets - 1, a power of 2
        repeated = []
        for bucket in range(mask + 1):
            values = pa.chunked_array(
                [
                    chunk.filter(pc.equal(pc.bit_wise_and(chunk, mask), bucket)) if mask else chunk
                    for chunk in self._read()
                ],
                pa.int64(),
            )
            if len(pc.unique(values)) < len(values):
                counts = pc.value_counts(values)
                repeated.append(
                    counts.field("values").filter(pc.greater(counts.field("counts"), 1))
                )
        if not repeated:
            return []
        value_set = pa.concat_arrays(repeated)
        positions: list[int] = []
        start = 0
        for chunk in self._read():
            hits = pc.indices_nonzero(pc.is_in(chunk, value_set=value_set))
            positions += [start + hit for hit in hits.to_pylist()]
            start += len(chunk)
        return list(_runs(self._spans, positions))

    def _spill(self) -> None:
        if self._pending:
            prints = pa.concat_arrays(self._pending)
            self._writer.write_batch(pa.record_batch([prints], schema=_PRINTS))
            self._pending, self._pending_rows = [], 0

    def _read(self) -> Iterator[pa.Array]:
        with pa.OSFile(str(self._path)) as source:
            for batch in pa.ipc.open_stream(source):
                yield batch.column(0)


def _runs(spans: list[_Run], positions: list[int]) -> Iterator[_Run]:
    """Arrival positions (sorted) as (part, offset, rows) runs of consecutive rows."""
    starts = list(accumulate((rows for _, _, rows in spans), initial=0))
    run: list[int] | None = None  # [part, offset, rows]
    for position in positions:
        span = bisect_right(starts, position) - 1
        part, offset, _rows = spans[span]
        at = offset + position - starts[span]
        if run is not None and run[0] == part and run[1] + run[2] == at:
            run[2] += 1
            continue
        if run is not None:
            yield run[0], run[1], run[2]
        run = [part, at, 1]
    if run is not None:
        yield run[0], run[1], run[2]

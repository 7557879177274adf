"""Finds the rows to drop so that each message `id` appears once in a window.

Only the `id` and `updated_at` columns are remembered, plus one (part, offset, rows) span per
written batch, so memory is O(ids) however large the rows are. Of the rows sharing an id, the
one with the latest `updated_at` stays (a null `updated_at` counts as older than any value);
on a tie, the row that arrived later stays, because an export that repeats a message
usually repeats it with its newer state.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from itertools import accumulate

import pyarrow as pa
import pyarrow.compute as pc

from storage.schema import UTC_MICROS


class IdIndex:
    def __init__(self) -> None:
        self._ids: list[pa.Array] = []
        self._updated: list[pa.Array] = []
        self._spans: list[tuple[int, int, int]] = []
        self.rows = 0

    def add(self, ids: pa.Array, updated_at: pa.Array, part: int, offset: int) -> None:
        """Records rows that were written to `part` starting at row `offset`, in arrival order."""
        self._ids.append(ids)
        self._updated.append(updated_at)
        self._spans.append((part, offset, len(ids)))
        self.rows += len(ids)

    def drops(self) -> dict[int, list[int]]:
        """For each part that holds superseded rows, the sorted row offsets to drop."""
        if not self.rows:
            return {}
        ids = pa.chunked_array(self._ids, pa.string())
        if pc.count_distinct(ids).as_py() == self.rows:
            return {}
        counts = pc.value_counts(ids)
        repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
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

    def _locate(self, positions: list[int]) -> Iterator[tuple[int, int]]:
        """Maps arrival positions to (part, row offset in that part)."""
        starts = list(accumulate((rows for _, _, rows in self._spans), initial=0))
        for position in positions:
            span = bisect_right(starts, position) - 1
            part, offset, _rows = self._spans[span]
            yield part, offset + position - starts[span]

"""`verify` beyond the manifests: the archive checked as the table a warehouse reads.

No id twice across committed windows, no gap between the first and the last committed window,
no two committed windows covering the same time, and the ledger's committed windows all
present. Works on what the caller hands it, so the plain layout and the Iceberg table share it.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from storage.layout import Window, manifest_key
from storage.ledger import WindowRecord
from storage.lifecycle import RETIRED
from storage.manifest import ManifestError, load, manifest_keys
from storage.objectstore import ObjectNotFound, ObjectStore
from storage.schema import STREAM
from storage.table_checks import coverage_gaps, duplicate_ids, overlaps
from storage.verify import Problem


def ever_committed(records: Iterable[WindowRecord]) -> list[WindowRecord]:
    """Windows whose data is in the archive: committed, or committed once and being
    re-exported now (their earlier commit stays readable until the new one lands). Retired
    windows (split, replaced) are not: others have taken their time over."""
    return [
        r
        for r in records
        if r.state not in RETIRED and (r.state == "committed" or r.committed_at is not None)
    ]


def ledger_problems(
    records: list[WindowRecord], start: datetime | None, since: datetime | None
) -> Iterator[Problem]:
    """Gaps and overlaps among the committed windows, from `start` on."""
    committed = [r.window for r in ever_committed(records)]
    for gap in coverage_gaps(committed, start):
        if since is not None and gap.end <= since:
            continue
        states = sorted(
            {r.state for r in records if r.window.start < gap.end and r.window.end > gap.start}
        )
        known = (
            f"; the ledger has it as {', '.join(states)}"
            if states
            else "; the ledger has no window there"
        )
        yield Problem(gap.name, "gap", f"{gap} is not archived{known}")
    for first, second in overlaps(committed):
        yield Problem(
            second.name,
            "overlap",
            f"committed windows {first} and {second} cover the same time; "
            "`export --replace` the period to keep one",
        )


def plain_problems(
    store: ObjectStore, records: list[WindowRecord], since: datetime | None, stream: str = STREAM
) -> Iterator[Problem]:
    """The ledger's committed windows against the manifests, and ids across all parts."""
    manifests = {window: key for key, window in manifest_keys(store, stream, since)}
    for record in ever_committed(records):
        if since is not None and record.window.end <= since:
            continue
        if record.window not in manifests:
            yield Problem(
                manifest_key(record.window, stream),
                "ledger",
                f"the ledger has {record.window} committed; its manifest is missing",
            )
    parts: list[str] = []
    for key in manifests.values():
        try:
            manifest = load(key, store.get_bytes(key))
        except (ManifestError, ObjectNotFound):
            continue  # reported by the manifest checks
        parts += [part.key for part in manifest.parts]
    yield from id_problems((key, _part_ids(store, key)) for key in parts)


def id_problems(sources: Iterable[tuple[str, Iterable[pa.Array]]]) -> Iterator[Problem]:
    with tempfile.TemporaryDirectory(prefix="chat-archiver-ids-") as tmp:
        for duplicate in duplicate_ids(sources, Path(tmp)):
            places = ", ".join(sorted(set(duplicate.sources)))
            yield Problem(
                duplicate.id,
                "duplicate",
                f"id appears {len(duplicate.sources)} times, in {places}",
            )


def _part_ids(store: ObjectStore, key: str) -> Iterator[pa.Array]:
    try:
        data = store.get_bytes(key)
    except ObjectNotFound:
        return  # reported as missing by the manifest checks
    try:
        source = pq.ParquetFile(io.BytesIO(data))
        for group in range(source.num_row_groups):
            yield source.read_row_group(group, columns=["id"]).column("id").combine_chunks()
    except (pa.ArrowException, OSError):
        return  # reported as schema problems by the manifest checks


def windows_of(records: Iterable[WindowRecord]) -> dict[Window, WindowRecord]:
    return {record.window: record for record in records}

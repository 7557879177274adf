"""Bounding `_raw/`: callback bodies and kept export files older than the retention are deleted,
except what a window still needs (a callback waiting to be processed, or quarantined for
`replay`). The age is the `received_at` in the object's name, so no object is read.

Deleting a committed window's raw objects costs only the ability to `replay` it; its data is in
the archive. An S3 lifecycle rule on `_raw/` does the same without this pass (README), but does
not spare quarantined windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from storage.layout import raw_received_at
from storage.ledger import Ledger
from storage.objectstore import ObjectStore

RAW_PREFIX = "_raw/"
_NEEDED = frozenset({"pending", "quarantined"})


@dataclass
class RawUsage:
    objects: int = 0
    bytes: int = 0


@dataclass
class PruneReport:
    deleted: RawUsage
    kept: RawUsage


def raw_usage(store: ObjectStore) -> RawUsage:
    """How many objects and bytes `_raw/` holds (one listing)."""
    usage = RawUsage()
    for info in store.list(RAW_PREFIX):
        usage.objects += 1
        usage.bytes += info.size
    return usage


def prune_raw(
    store: ObjectStore, ledger: Ledger, *, older_than: datetime, dry_run: bool = False
) -> PruneReport:
    """Deletes raw objects received before `older_than` that no window needs any more."""
    report = PruneReport(RawUsage(), RawUsage())
    current, needed = "", frozenset[str]()
    for info in store.list(RAW_PREFIX):  # sorted by key: one export's objects come together
        export_id, _, name = info.key.removeprefix(RAW_PREFIX).partition("/")
        received_at = raw_received_at(name)
        if export_id != current:
            current = export_id
            needed = frozenset(
                record.callback_id
                for record in ledger.callbacks(export_id)
                if record.state in _NEEDED
            )
        callback_id = name.partition("-")[2].partition(".")[0]
        if received_at is None or received_at >= older_than or callback_id in needed:
            report.kept.objects += 1
            report.kept.bytes += info.size
            continue
        if not dry_run:
            store.delete(info.key)
        report.deleted.objects += 1
        report.deleted.bytes += info.size
    return report

"""Snapshot expiry and orphan cleanup: what `chat-archiver maintain` does to the Iceberg table.

Snapshots older than the retention are expired (the current one never is), then every data
file no remaining snapshot references is deleted, except those of windows being processed
right now (their files may be uploaded and not yet committed). Time travel reaches back as far
as the retention; storage holds the current rows plus what changed within it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from pyiceberg.table import Table

from storage.iceberg.orphans import delete_orphans
from storage.layout import Window

log = logging.getLogger("chat_archiver.iceberg")


@dataclass(frozen=True)
class MaintenanceReport:
    expired_snapshots: int
    deleted_files: list[str]


def maintain(
    table: Table, *, retention: timedelta, now: datetime, busy: set[Window]
) -> MaintenanceReport:
    current = table.current_snapshot()
    expired = [
        snapshot.snapshot_id
        for snapshot in table.snapshots()
        if snapshot.timestamp_ms < (now - retention).timestamp() * 1000
        and (current is None or snapshot.snapshot_id != current.snapshot_id)
    ]
    if expired:
        table.maintenance.expire_snapshots().by_ids(expired).commit()
        table.refresh()
    deleted = delete_orphans(table, busy=busy)
    log.info(
        "iceberg_maintained",
        extra={"expired_snapshots": len(expired), "deleted_files": len(deleted)},
    )
    return MaintenanceReport(len(expired), deleted)

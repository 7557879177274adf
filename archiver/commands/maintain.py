"""`chat-archiver maintain`: expire old Iceberg snapshots and delete files nothing references."""

from __future__ import annotations

from datetime import UTC, datetime

from archiver.errors import CommandError
from archiver.settings import Settings
from storage.ledger import Ledger
from storage.lifecycle import WindowState
from storage.schema import STREAM


def maintain(settings: Settings) -> int:
    if settings.table_format != "iceberg":
        raise CommandError(
            "maintain works on the Iceberg table; ARCHIVER_TABLE_FORMAT is parquet, whose "
            "objects are replaced in place and need no maintenance"
        )
    from archiver.tables import table_source
    from storage.iceberg.maintenance import maintain as maintain_table

    table = table_source(settings).current()
    if table is None:
        print(f"maintain: the table {settings.iceberg_table} does not exist yet; nothing to do")
        return 0
    with Ledger.open(settings.ledger_url) as ledger:
        busy = {r.window for r in ledger.windows(STREAM, states=[WindowState.RECEIVED])}
    report = maintain_table(
        table, retention=settings.iceberg_snapshot_retention, now=datetime.now(UTC), busy=busy
    )
    print(
        f"maintain: expired {report.expired_snapshots} snapshot(s) older than "
        f"{settings.iceberg_snapshot_retention}, deleted {len(report.deleted_files)} "
        f"unreferenced file(s) of {settings.iceberg_table}"
    )
    return 0

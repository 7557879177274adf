"""`chat-archiver ddl` and `prune-raw`: the archive as warehouses see it, and its raw store
kept within bounds."""

from __future__ import annotations

from datetime import UTC, datetime

from archiver.errors import CommandError
from archiver.settings import Settings
from archiver.status_report import human_bytes
from storage.ddl import render_ddl
from storage.ledger import Ledger
from storage.objectstore import open_store
from storage.raw_retention import prune_raw


def ddl(settings: Settings, *, dialect: str, table: str) -> int:
    if settings.table_format == "iceberg":
        print(iceberg_ddl(settings, dialect))
        return 0
    print(render_ddl(dialect, settings.storage_url, table=table))
    return 0


def iceberg_ddl(settings: Settings, dialect: str) -> str:
    from archiver.tables import table_source
    from storage.iceberg.ddl import TableLocation, render_iceberg_ddl

    tables = table_source(settings)
    current = tables.current()
    config = tables.config
    where = TableLocation(
        table=config.table,
        location=config.location,
        metadata_location=current.metadata_location if current is not None else None,
        catalog=config.catalog,
        catalog_uri=config.catalog_uri or config.ledger_url,
    )
    return render_iceberg_ddl(dialect, where)


def prune_raw_command(settings: Settings, *, dry_run: bool) -> int:
    """One pass of the deletion `serve` runs hourly when ARCHIVER_RAW_RETENTION is set."""
    if settings.raw_retention is None:
        raise CommandError("ARCHIVER_RAW_RETENTION is not set: raw objects are kept for ever")
    store = open_store(settings.storage_url, settings.s3)
    cutoff = datetime.now(UTC) - settings.raw_retention
    with Ledger.open(settings.ledger_url) as ledger:
        report = prune_raw(store, ledger, older_than=cutoff, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    print(
        f"prune-raw: {verb} {report.deleted.objects} objects ({human_bytes(report.deleted.bytes)})"
        f" received before {cutoff.isoformat(timespec='seconds')}; kept "
        f"{report.kept.objects} ({human_bytes(report.kept.bytes)})"
    )
    return 0

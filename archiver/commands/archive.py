"""`chat-archiver verify`, `ddl` and `prune-raw`: the archive as warehouses see it, and its
raw store kept within bounds."""

from __future__ import annotations

from datetime import UTC, datetime

from archiver.errors import CommandError
from archiver.settings import Settings
from archiver.status_report import human_bytes
from storage.ddl import render_ddl
from storage.ledger import Ledger
from storage.objectstore import open_store
from storage.raw_retention import prune_raw
from storage.verify import verify_archive


def verify(settings: Settings, *, since: datetime | None) -> int:
    store = open_store(settings.storage_url, settings.s3)
    problems = 0
    for problem in verify_archive(store, since=since):
        problems += 1
        print(f"{problem.kind:<9} {problem.key}  {problem.detail}")
    if problems:
        print(f"verify: {problems} problem(s) in {store.description}")
        return 1
    print(f"verify: archive at {store.description} matches its manifests")
    return 0


def ddl(settings: Settings, *, dialect: str, table: str) -> int:
    print(render_ddl(dialect, settings.storage_url, table=table))
    return 0


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

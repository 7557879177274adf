"""`chat-archiver verify` and `ddl`: the archive as warehouses see it."""

from __future__ import annotations

from datetime import datetime

from archiver.settings import Settings
from storage.ddl import render_ddl
from storage.objectstore import open_store
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

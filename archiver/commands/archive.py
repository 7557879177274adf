"""`chat-archiver ddl`: the archive as warehouses see it."""

from __future__ import annotations

from archiver.settings import Settings
from storage.ddl import render_ddl


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

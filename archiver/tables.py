"""Which table format windows are committed to, built from the settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from archiver.settings import Settings
from storage.objectstore import ObjectStore
from storage.target import CommitTarget, PlainTarget

if TYPE_CHECKING:
    from storage.iceberg.catalog import IcebergConfig, TableSource


def iceberg_config(settings: Settings) -> IcebergConfig:
    from storage.iceberg.catalog import IcebergConfig

    return IcebergConfig(
        storage_url=settings.storage_url,
        ledger_url=settings.ledger_url,
        catalog=settings.iceberg_catalog,
        catalog_uri=settings.iceberg_catalog_uri,
        table=settings.iceberg_table,
        s3=settings.s3,
    )


def table_source(settings: Settings) -> TableSource:
    # pyiceberg is imported only when the Iceberg format is used: it is slow to import.
    from storage.iceberg.catalog import TableSource

    return TableSource(iceberg_config(settings))


def commit_target(settings: Settings, store: ObjectStore) -> CommitTarget:
    if settings.table_format == "iceberg":
        from storage.iceberg.commit import IcebergTarget

        return IcebergTarget(store, table_source(settings))
    return PlainTarget(store)

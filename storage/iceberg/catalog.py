"""The catalog `chat_archiver` and the archive's table in it.

By default a SQL catalog in the ledger's own database (SQLite or Postgres, the same URL), so
the table needs nothing new to run; `rest` (Polaris, Nessie, S3 Tables, Unity...) or `glue` by
setting. The table is created on first use, located at `{storage}/iceberg`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.table import Table

from storage.errors import ErrorKind, TransientError
from storage.iceberg.fileio import io_properties, root_url
from storage.iceberg.schema import (
    ICEBERG_SCHEMA,
    PARTITION_SPEC,
    TABLE_DIR,
    TABLE_PROPERTIES,
    schema_problem,
)
from storage.objectstore import S3Options

CATALOG_NAME = "chat_archiver"
CATALOG_KINDS = ("sql", "rest", "glue")
DEFAULT_TABLE = "chat_archive.chat_messages"

log = logging.getLogger("chat_archiver.iceberg")

# pyiceberg warns on every read of a file whose Arrow schema has a dictionary column; files
# written before FILE_SCHEMA dropped it would flood the logs.
logging.getLogger("pyiceberg.io.pyarrow").setLevel(logging.ERROR)
# pyiceberg logs every FileIO it loads at INFO; that is one line per table load.
logging.getLogger("pyiceberg").setLevel(logging.WARNING)


class IcebergError(TransientError):
    """The catalog or the table cannot be used; the message says why, in one line.

    Transient unless raised as a user error (a setting that cannot work)."""


@dataclass(frozen=True)
class IcebergConfig:
    storage_url: str
    ledger_url: str
    catalog: str = "sql"
    catalog_uri: str | None = None
    table: str = DEFAULT_TABLE
    s3: S3Options = field(default_factory=S3Options)

    @property
    def location(self) -> str:
        return f"{root_url(self.storage_url)}/{TABLE_DIR}"

    @property
    def namespace(self) -> str:
        return self.table.rpartition(".")[0]


def catalog_properties(config: IcebergConfig) -> dict[str, str]:
    properties = io_properties(config.storage_url, config.s3)
    if config.catalog == "sql":
        properties |= {"type": "sql", "uri": config.catalog_uri or config.ledger_url}
    elif config.catalog == "rest":
        if not config.catalog_uri:
            raise IcebergError(
                "ARCHIVER_ICEBERG_CATALOG_URI is required for a rest catalog", kind=ErrorKind.USER
            )
        properties |= {"type": "rest", "uri": config.catalog_uri}
    elif config.catalog == "glue":
        properties |= {"type": "glue"}
        if config.catalog_uri:
            properties["glue.endpoint"] = config.catalog_uri
    else:
        raise IcebergError(
            f"unknown catalog kind {config.catalog!r}; use sql, rest or glue", kind=ErrorKind.USER
        )
    return properties


def open_catalog(config: IcebergConfig) -> Catalog:
    try:
        return load_catalog(CATALOG_NAME, **catalog_properties(config))
    except IcebergError:
        raise
    except Exception as error:  # any driver or network error, said in one line
        raise IcebergError(
            f"cannot open the {config.catalog} catalog {CATALOG_NAME}: {type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}"
        ) from error


class TableSource:
    """Loads the archive's table (creating it the first time), fresh for every commit."""

    def __init__(self, config: IcebergConfig, catalog: Catalog | None = None) -> None:
        if "." not in config.table:
            raise IcebergError(
                f"ARCHIVER_ICEBERG_TABLE {config.table!r} must be namespace.table",
                kind=ErrorKind.USER,
            )
        self.config = config
        self._catalog = catalog
        self._checked = False

    @property
    def catalog(self) -> Catalog:
        """Opened on first use, so a service starts (and answers /healthz) without waiting on it."""
        if self._catalog is None:
            self._catalog = open_catalog(self.config)
        return self._catalog

    def current(self) -> Table | None:
        """The table as it is, or None when no window has created it yet."""
        try:
            return self.catalog.load_table(self.config.table)
        except NoSuchTableError:
            return None

    def load(self) -> Table:
        try:
            table = self.catalog.load_table(self.config.table)
        except NoSuchTableError:
            table = self._create()
        if not self._checked:
            problem = schema_problem(table.schema())
            if problem:
                raise IcebergError(
                    f"table {self.config.table} has another schema: {problem}",
                    kind=ErrorKind.USER,
                )
            self._checked = True
        return table

    def _create(self) -> Table:
        self.catalog.create_namespace_if_not_exists(self.config.namespace)
        table = self.catalog.create_table_if_not_exists(
            self.config.table,
            schema=ICEBERG_SCHEMA,
            location=self.config.location,
            partition_spec=PARTITION_SPEC,
            properties=TABLE_PROPERTIES,
        )
        log.info(
            "iceberg_table_created",
            extra={"table": self.config.table, "location": self.config.location},
        )
        return table

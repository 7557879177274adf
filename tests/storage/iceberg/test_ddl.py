"""`chat-archiver ddl` for Iceberg readers: one snapshot per engine, and DuckDB on a real table."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from storage.iceberg.catalog import TableSource
from storage.iceberg.commit import IcebergTarget
from storage.iceberg.ddl import DIALECTS, TableLocation, jdbc_of, render_iceberg_ddl
from storage.objectstore import ObjectStore
from tests.storage.messages import INGESTED, WINDOW, batches_of, day_of_messages

SNAPSHOTS = Path(__file__).parent / "ddl_snapshots"
SECRET = "s3cret"
WHERE = TableLocation(
    table="chat_archive.chat_messages",
    location="s3://bucket/prefix/iceberg",
    metadata_location="s3://bucket/prefix/iceberg/metadata/00003-abc.metadata.json",
    catalog="sql",
    catalog_uri=f"postgresql+psycopg://archiver:{SECRET}@db.internal:5432/archiver",
)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_iceberg_ddl_matches_its_snapshot_and_holds_no_password(dialect: str) -> None:
    text = render_iceberg_ddl(dialect, WHERE)
    assert text == (SNAPSHOTS / f"{dialect}.sql").read_text()
    assert SECRET not in text


def test_the_jdbc_url_of_a_sqlite_catalog_is_its_file() -> None:
    assert jdbc_of("sqlite:////var/lib/archiver.db").url == "jdbc:sqlite:/var/lib/archiver.db"


def test_duckdb_reads_the_table_the_ddl_points_at(tmp_path: Path) -> None:
    from storage.iceberg.catalog import IcebergConfig
    from storage.objectstore import open_store

    url = f"file://{tmp_path}/archive"
    store: ObjectStore = open_store(url)
    tables = TableSource(IcebergConfig(storage_url=url, ledger_url=f"sqlite:///{tmp_path}/l.db"))
    messages = day_of_messages(50)
    IcebergTarget(store, tables).commit_window(
        WINDOW, "e", batches_of(messages, 10), ingested_at=INGESTED
    )
    table = tables.load()
    where = TableLocation(
        "chat_archive.chat_messages", tables.config.location, table.metadata_location, "sql", ""
    )
    statements = render_iceberg_ddl("duckdb", where)
    assert f"iceberg_scan('{table.metadata_location.removeprefix('file://')}')" in statements
    connection = duckdb.connect()
    try:
        connection.execute(statements)
    except duckdb.Error:
        # The iceberg extension cannot be downloaded here: read the same snapshot through
        # pyiceberg and query its Arrow in DuckDB, as the view would.
        connection.register("snapshot_rows", table.scan().to_arrow())
        connection.execute("CREATE VIEW chat_messages AS SELECT * FROM snapshot_rows")
    counts = connection.execute("SELECT count(*), count(DISTINCT id) FROM chat_messages")
    assert counts.fetchall() == [(50, 50)]

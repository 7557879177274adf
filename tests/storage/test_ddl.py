from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from storage.commit import WriteOptions, write_window
from storage.ddl import DIALECTS, render_ddl
from storage.layout import Window
from storage.objectstore import open_store
from storage.records import Lineage, normalize_batch
from tests.storage.messages import DAY, INGESTED, batch, batches_of, day_of_messages, message

SNAPSHOTS = Path(__file__).parent / "ddl_snapshots"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_ddl_matches_its_snapshot(dialect: str) -> None:
    expected = (SNAPSHOTS / f"{dialect}.sql").read_text()
    assert render_ddl(dialect, "s3://bucket/prefix") == expected
    assert render_ddl(dialect, "s3://bucket/prefix/") == expected


def test_duckdb_view_reads_back_exactly_what_was_archived(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/archive"
    store = open_store(url)
    window = Window(DAY + timedelta(hours=12), DAY + timedelta(hours=36))
    records = day_of_messages(90, start=window.start, step=timedelta(minutes=15))
    options = WriteOptions(part_bytes=6_000, row_group_bytes=3_000)
    result = write_window(
        store, window, "e", batches_of(records, 16), ingested_at=INGESTED, options=options
    )
    assert len({part.key.split("/")[1] for part in result.parts}) == 2

    connection = duckdb.connect()
    connection.execute(render_ddl("duckdb", url))
    archived = connection.sql(
        "SELECT * EXCLUDE (date), CAST(date AS VARCHAR) AS day FROM chat_messages ORDER BY id"
    ).to_arrow_table()
    expected = normalize_batch(batch(records), Lineage("e", window, INGESTED)).batch
    expected_rows = pa.Table.from_batches([expected]).sort_by("id").to_pylist()
    rows = archived.to_pylist()
    days = [row.pop("day") for row in rows]
    assert rows == expected_rows
    assert days == [row["created_at"].date().isoformat() for row in expected_rows]


def test_duckdb_view_uses_the_absolute_path_of_a_relative_file_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert f"read_parquet('{tmp_path}/archive/chat_messages/*/*.parquet'" in render_ddl(
        "duckdb", "file://./archive"
    )


def test_locations_are_quoted_as_sql_literals() -> None:
    assert "LOCATION 's3://b/it''s/chat_messages/'" in render_ddl("athena", "s3://b/it's")


def test_unknown_dialects_and_odd_table_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown dialect 'oracle'"):
        render_ddl("oracle", "s3://b")
    with pytest.raises(ValueError, match="table name"):
        render_ddl("athena", "s3://b", table="x; DROP TABLE y")


def test_qualified_trino_tables_sync_their_own_schema() -> None:
    text = render_ddl("trino", "s3://b/p", table="hive.analytics.messages")
    assert "CREATE TABLE IF NOT EXISTS hive.analytics.messages (" in text
    assert "CALL hive.system.sync_partition_metadata('analytics', 'messages', 'FULL');" in text


def test_duckdb_latest_view_keeps_the_newest_version_of_each_id(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/archive"
    store = open_store(url)
    first = Window(DAY, DAY + timedelta(days=1))
    second = Window(DAY + timedelta(days=1), DAY + timedelta(days=2))
    older = message(1, DAY + timedelta(hours=23), updatedAt="2024-03-01T23:00:00Z")
    # The same id again in the next window, as a platform whose createdAt moved would send it.
    newer = message(1, DAY + timedelta(days=1, hours=1), updatedAt="2024-03-02T09:00:00Z")
    write_window(store, first, "a", [batch([older, message(2, DAY)])], ingested_at=INGESTED)
    write_window(store, second, "b", [batch([newer])], ingested_at=INGESTED)
    connection = duckdb.connect()
    connection.execute(render_ddl("duckdb", url))
    assert connection.execute("SELECT count(*) FROM chat_messages").fetchall() == [(3,)]
    rows = connection.sql(
        "SELECT id, _export_id FROM chat_messages_latest ORDER BY _export_id"
    ).fetchall()
    assert rows == [(message(2, DAY)["id"], "a"), (older["id"], "b")]

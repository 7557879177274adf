"""The SQL that exposes the archive as a table in common engines: `chat-archiver ddl`.

Types come from MESSAGE_SCHEMA; `role` is a plain string to every engine (its dictionary
encoding is a storage detail), and `date` is the partition column from the object layout.

Every dialect also gets a `{table}_latest` view with one row per message id: the newest
`updated_at`, then the newest `_ingested_at`. A globbing reader of the table itself can see a
message twice while a window is being replaced (see the README); the view never does.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pyarrow as pa

from storage.errors import UserError
from storage.objectstore import local_path
from storage.schema import MESSAGE_SCHEMA, STREAM

DIALECTS = ("athena", "bigquery", "snowflake", "duckdb", "trino", "spark")

_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*){0,2}$")


class DdlError(UserError, ValueError):
    """The dialect or the table name asked for cannot be used."""


def render_ddl(dialect: str, location: str, table: str = STREAM) -> str:
    """Statements for `dialect` over the archive at `location` (the storage URL)."""
    render = _RENDERERS.get(dialect)
    if render is None:
        raise DdlError(f"unknown dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")
    if not _TABLE_NAME.match(table):
        raise DdlError(f"table name {table!r} is not a plain [catalog.][schema.]name")
    return render(location, table) + "\n" + latest_view(dialect, table)


LATEST_ORDER = "updated_at DESC NULLS LAST, _ingested_at DESC"


def latest_view(dialect: str, table: str) -> str:
    """`{table}_latest`: one row per id, the newest version (ROW_NUMBER; QUALIFY where the
    engine has it)."""
    view = f"{table}_latest"
    rank = f"ROW_NUMBER() OVER (PARTITION BY id ORDER BY {LATEST_ORDER})"
    comment = "-- One row per message id: the newest updated_at, then the newest _ingested_at.\n"
    if dialect in ("duckdb", "snowflake"):
        body = f"SELECT * FROM {table}\nQUALIFY {rank} = 1"
    elif dialect == "bigquery":
        body = f"SELECT * FROM {table}\nWHERE TRUE\nQUALIFY {rank} = 1"
    else:
        quote = (lambda name: f"`{name}`") if dialect == "spark" else (lambda name: f'"{name}"')
        names = ", ".join(quote(name) for name in [*MESSAGE_SCHEMA.names, "date"])
        body = (
            f"SELECT {names}\nFROM (SELECT *, {rank} AS _version_rank FROM {table})\n"
            "WHERE _version_rank = 1"
        )
    return f"{comment}CREATE OR REPLACE VIEW {view} AS\n{body};\n"


def _athena(location: str, table: str) -> str:
    root = _stream_url(location)
    columns = _columns(lambda name: f"`{name}`", _ATHENA)
    return f"""\
-- Athena: partition projection finds new dates without MSCK REPAIR TABLE.
-- Quote the partition column in queries: WHERE "date" = '2024-01-31'.
{_object_store_note(location)}CREATE EXTERNAL TABLE IF NOT EXISTS {table} (
{columns}
)
PARTITIONED BY (`date` string)
STORED AS PARQUET
LOCATION {_literal(root + "/")}
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.date.type' = 'date',
  'projection.date.format' = 'yyyy-MM-dd',
  'projection.date.range' = '2000-01-01,NOW',
  'projection.date.interval' = '1',
  'projection.date.interval.unit' = 'DAYS',
  'storage.location.template' = {_literal(root + "/date=${date}/")}
);
"""


def _bigquery(location: str, table: str) -> str:
    root = _stream_url(location)
    columns = _columns(lambda name: f"`{name}`", _BIGQUERY)
    qualify = "" if "." in table else "-- Qualify the table with its dataset: dataset.table.\n"
    return f"""\
-- BigQuery: external tables read Parquet from Cloud Storage (gs://). The location is kept as
-- given: for an s3:// archive add WITH CONNECTION `region.connection` (BigQuery Omni) before
-- OPTIONS, or copy the archive to a gs:// bucket and change both URIs.
{qualify}CREATE EXTERNAL TABLE IF NOT EXISTS {table} (
{columns}
)
WITH PARTITION COLUMNS (
  `date` DATE
)
OPTIONS (
  format = 'PARQUET',
  uris = [{_literal(root + "/*")}],
  hive_partition_uri_prefix = {_literal(root)},
  require_hive_partition_filter = false
);
"""


def _snowflake(location: str, table: str) -> str:
    root = _stream_url(location)
    stage = f"{table}_stage"
    partition = (
        "  date DATE AS TO_DATE(SPLIT_PART(SPLIT_PART(METADATA$FILENAME, 'date=', 2), '/', 1)),\n"
    )
    columns = _columns(str, _SNOWFLAKE, value=lambda name, kind: f" AS (VALUE:{name}::{kind})")
    return f"""\
-- Snowflake: a stage over the archive and an external table on it; `date` comes from each
-- file's path. Give the stage access (STORAGE_INTEGRATION = ...) before running.
-- Timestamps are UTC, kept as TIMESTAMP_NTZ so no session time zone shifts them.
{_object_store_note(location)}CREATE STAGE IF NOT EXISTS {stage}
  URL = {_literal(root + "/")}
  FILE_FORMAT = (TYPE = PARQUET);

CREATE EXTERNAL TABLE IF NOT EXISTS {table} (
{partition}{columns}
)
PARTITION BY (date)
LOCATION = @{stage}
FILE_FORMAT = (TYPE = PARQUET)
AUTO_REFRESH = FALSE;

ALTER EXTERNAL TABLE {table} REFRESH;
"""


def _trino(location: str, table: str) -> str:
    root = _stream_url(location)
    names = table.split(".")
    schema = names[-2] if len(names) >= 2 else "default"
    procedure = f"{names[0]}.system" if len(names) == 3 else "system"
    columns = _columns(lambda name: f'"{name}"', _TRINO)
    return f"""\
-- Trino, Hive connector. Timestamps are declared timestamp(3), the connector's default
-- precision; with hive.timestamp-precision=MICROSECONDS use timestamp(6) to read them whole.
{_object_store_note(location)}CREATE TABLE IF NOT EXISTS {table} (
{columns},
  "date" varchar
)
WITH (
  external_location = {_literal(root + "/")},
  format = 'PARQUET',
  partitioned_by = ARRAY['date']
);

CALL {procedure}.sync_partition_metadata({_literal(schema)}, {_literal(names[-1])}, 'FULL');
"""


def _duckdb(location: str, table: str) -> str:
    if location.startswith("file://"):
        root = local_path(location).as_posix().rstrip("/") + f"/{STREAM}"
        note = ""
    else:
        root = _stream_url(location)
        note = (
            "-- For s3:// first run: INSTALL httpfs; LOAD httpfs;\n"
            "-- CREATE SECRET (TYPE s3, PROVIDER credential_chain);"
            "  -- add ENDPOINT for S3-compatible stores\n"
        )
    glob = _literal(f"{root}/*/*.parquet")
    return f"""\
{note}CREATE OR REPLACE VIEW {table} AS
SELECT * FROM read_parquet({glob}, hive_partitioning = true);
"""


def _spark(location: str, table: str) -> str:
    root = _stream_url(location).replace("s3://", "s3a://", 1)
    columns = _columns(lambda name: f"`{name}`", _SPARK)
    return f"""\
-- Spark SQL: a Parquet table over the layout; `date` is discovered from the paths.
{_object_store_note(location)}CREATE TABLE IF NOT EXISTS {table} (
{columns},
  `date` STRING
)
USING PARQUET
PARTITIONED BY (`date`)
LOCATION {_literal(root + "/")};

MSCK REPAIR TABLE {table};
"""


_RENDERERS: dict[str, Callable[[str, str], str]] = {
    "athena": _athena,
    "bigquery": _bigquery,
    "snowflake": _snowflake,
    "duckdb": _duckdb,
    "trino": _trino,
    "spark": _spark,
}


def _columns(
    quote: Callable[[str], str],
    types: dict[str, str],
    value: Callable[[str, str], str] | None = None,
) -> str:
    """One column definition per MESSAGE_SCHEMA field; `types` maps "text" and "time"."""
    lines = []
    for field in MESSAGE_SCHEMA:
        kind = types[_kind(field.type)]
        suffix = value(field.name, kind) if value else ""
        lines.append(f"  {quote(field.name)} {kind}{suffix}")
    return ",\n".join(lines)


def _kind(kind: pa.DataType) -> str:
    if pa.types.is_timestamp(kind):
        return "time"
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_string(kind):
        return "text"
    raise TypeError(f"no SQL type mapped for Arrow type {kind}")


_ATHENA = {"text": "string", "time": "timestamp"}
_BIGQUERY = {"text": "STRING", "time": "TIMESTAMP"}
_SNOWFLAKE = {"text": "VARCHAR", "time": "TIMESTAMP_NTZ"}
_TRINO = {"text": "varchar", "time": "timestamp(3)"}
_SPARK = {"text": "STRING", "time": "TIMESTAMP"}


def _stream_url(location: str) -> str:
    return f"{location.rstrip('/')}/{STREAM}"


def _object_store_note(location: str) -> str:
    if location.startswith(("s3://", "s3a://", "gs://")):
        return ""
    return f"-- This engine reads object stores; {location} is kept as given.\n"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"

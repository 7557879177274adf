"""How each engine attaches to the Iceberg table: `chat-archiver ddl` with
ARCHIVER_TABLE_FORMAT=iceberg.

Trino and Spark read the catalog itself (the JDBC catalog on the ledger's database, which is
what the SQL catalog is); Snowflake, BigQuery and DuckDB read the table's metadata file (the
current one is printed, and must be re-pointed as commits move it on); Athena reads Glue.
No secret is printed: passwords are left as placeholders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from storage.iceberg.catalog import CATALOG_NAME

DIALECTS = ("athena", "bigquery", "snowflake", "duckdb", "trino", "spark")


@dataclass(frozen=True)
class TableLocation:
    """Where the table is, as the engines need to be told."""

    table: str
    """namespace.table in the catalog"""
    location: str
    """the table's location, {storage}/iceberg"""
    metadata_location: str | None
    """the current metadata file, or None before the first commit"""
    catalog: str
    """sql, rest or glue"""
    catalog_uri: str
    """the SQLAlchemy URL of the SQL catalog, or the rest/glue endpoint"""


def render_iceberg_ddl(dialect: str, target: TableLocation) -> str:
    render = _RENDERERS.get(dialect)
    if render is None:
        raise ValueError(f"unknown dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")
    return render(target)


@dataclass(frozen=True)
class Jdbc:
    url: str
    user: str | None
    driver: str


def jdbc_of(sqlalchemy_url: str) -> Jdbc:
    """The JDBC URL of the SQL catalog's database, without its password."""
    if sqlalchemy_url.startswith("sqlite:///"):
        return Jdbc(
            f"jdbc:sqlite:{sqlalchemy_url.removeprefix('sqlite:///')}", None, "org.sqlite.JDBC"
        )
    parts = urlsplit(sqlalchemy_url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return Jdbc(
        f"jdbc:postgresql://{host}{port}{parts.path}", parts.username, "org.postgresql.Driver"
    )


def _engine_table(target: TableLocation) -> str:
    return f"{CATALOG_NAME}.{target.table}"


def _metadata(target: TableLocation) -> str:
    return target.metadata_location or f"{target.location}/metadata/<no commit yet>.metadata.json"


def _refresh_note(target: TableLocation) -> str:
    note = "-- Each window's commit writes a new metadata file; re-run this after commits.\n"
    if target.metadata_location is None:
        note += "-- No window is committed yet: run `chat-archiver ddl` again after the first.\n"
    return note


def _trino(target: TableLocation) -> str:
    if target.catalog == "sql":
        jdbc = jdbc_of(target.catalog_uri)
        user = f"iceberg.jdbc-catalog.connection-user={jdbc.user}\n" if jdbc.user else ""
        password = "iceberg.jdbc-catalog.connection-password=<password>\n" if jdbc.user else ""
        config = (
            "connector.name=iceberg\n"
            "iceberg.catalog.type=jdbc\n"
            f"iceberg.jdbc-catalog.catalog-name={CATALOG_NAME}\n"
            f"iceberg.jdbc-catalog.driver-class={jdbc.driver}\n"
            f"iceberg.jdbc-catalog.connection-url={jdbc.url}\n"
            f"{user}{password}"
            f"iceberg.jdbc-catalog.default-warehouse-dir={target.location}\n"
        )
    elif target.catalog == "rest":
        config = (
            "connector.name=iceberg\niceberg.catalog.type=rest\n"
            f"iceberg.rest-catalog.uri={target.catalog_uri}\n"
        )
    else:
        config = "connector.name=iceberg\niceberg.catalog.type=glue\n"
    lines = "".join(f"--   {line}\n" for line in config.splitlines())
    return f"""\
-- Trino, Iceberg connector on the same catalog the archiver commits to. Save as
-- etc/catalog/{CATALOG_NAME}.properties (plus the fs.native-s3.* settings of your store):
{lines}SELECT count(*) FROM {_engine_table(target)};
"""


def _spark(target: TableLocation) -> str:
    prefix = f"spark.sql.catalog.{CATALOG_NAME}"
    settings = [f"{prefix}=org.apache.iceberg.spark.SparkCatalog"]
    if target.catalog == "sql":
        jdbc = jdbc_of(target.catalog_uri)
        settings += [
            f"{prefix}.catalog-impl=org.apache.iceberg.jdbc.JdbcCatalog",
            f"{prefix}.uri={jdbc.url}",
        ]
        if jdbc.user:
            settings += [f"{prefix}.jdbc.user={jdbc.user}", f"{prefix}.jdbc.password=<password>"]
    elif target.catalog == "rest":
        settings += [f"{prefix}.type=rest", f"{prefix}.uri={target.catalog_uri}"]
    else:
        settings += [f"{prefix}.type=glue"]
    settings += [
        f"{prefix}.warehouse={target.location}",
        f"{prefix}.io-impl=org.apache.iceberg.aws.s3.S3FileIO",
    ]
    lines = "".join(f"--   --conf {setting}\n" for setting in settings)
    return f"""\
-- Spark (iceberg-spark-runtime and iceberg-aws-bundle on the classpath), started with:
{lines}SELECT count(*) FROM {_engine_table(target)};
"""


def _snowflake(target: TableLocation) -> str:
    base = target.location.rsplit("/", 1)[0]
    relative = _metadata(target).removeprefix(base + "/")
    name = target.table.rpartition(".")[2]
    return f"""\
-- Snowflake: an external volume on the archive, an object-store catalog integration, and an
-- Iceberg table on the current metadata file. Give the volume access (STORAGE_AWS_ROLE_ARN).
{_refresh_note(target)}CREATE EXTERNAL VOLUME IF NOT EXISTS {name}_volume
  STORAGE_LOCATIONS = ((
    NAME = '{name}_location'
    STORAGE_PROVIDER = 'S3'
    STORAGE_BASE_URL = '{base}/'
    STORAGE_AWS_ROLE_ARN = '<role arn>'
  ));

CREATE CATALOG INTEGRATION IF NOT EXISTS {name}_catalog
  CATALOG_SOURCE = OBJECT_STORE
  TABLE_FORMAT = ICEBERG
  ENABLED = TRUE;

CREATE ICEBERG TABLE IF NOT EXISTS {name}
  EXTERNAL_VOLUME = '{name}_volume'
  CATALOG = '{name}_catalog'
  METADATA_FILE_PATH = '{relative}';

ALTER ICEBERG TABLE {name} REFRESH '{relative}';
"""


def _bigquery(target: TableLocation) -> str:
    name = target.table.rpartition(".")[2]
    return f"""\
-- BigQuery: a BigLake Iceberg table on the current metadata file (gs:// directly; for an
-- s3:// archive use a BigQuery Omni connection). Qualify the table with its dataset.
{_refresh_note(target)}CREATE OR REPLACE EXTERNAL TABLE {name}
WITH CONNECTION `<region>.<connection>`
OPTIONS (
  format = 'ICEBERG',
  uris = ['{_metadata(target)}']
);
"""


def _athena(target: TableLocation) -> str:
    namespace, _, name = target.table.rpartition(".")
    if target.catalog != "glue":
        note = (
            f"-- Athena reads Iceberg tables through AWS Glue. This archive commits to the "
            f"{target.catalog} catalog;\n"
            "-- set ARCHIVER_ICEBERG_CATALOG=glue, or register the current metadata file in Glue:\n"
            f"--   aws glue create-table --database-name {namespace} --table-input "
            f'\'{{"Name": "{name}", "TableType": "EXTERNAL_TABLE", "Parameters": '
            f'{{"table_type": "ICEBERG", "metadata_location": "{_metadata(target)}"}}}}\'\n'
        )
    else:
        note = "-- Athena reads the table straight from the Glue catalog the archiver commits to.\n"
    return f"""\
{note}SELECT count(*) FROM "{namespace}"."{name}";
"""


def _duckdb(target: TableLocation) -> str:
    name = target.table.rpartition(".")[2]
    location = _metadata(target)
    if location.startswith("file://"):
        location = location.removeprefix("file://")
    note = (
        ""
        if location.startswith("/")
        else (
            "-- For s3://: CREATE SECRET (TYPE s3, PROVIDER credential_chain);"
            "  -- add ENDPOINT for S3-compatible stores\n"
        )
    )
    return f"""\
{_refresh_note(target)}INSTALL iceberg;
LOAD iceberg;
{note}CREATE OR REPLACE VIEW {name} AS
SELECT * FROM iceberg_scan('{location}');
"""


_RENDERERS: dict[str, Callable[[TableLocation], str]] = {
    "athena": _athena,
    "bigquery": _bigquery,
    "snowflake": _snowflake,
    "duckdb": _duckdb,
    "trino": _trino,
    "spark": _spark,
}

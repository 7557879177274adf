from __future__ import annotations

from pathlib import Path

import pytest

from storage.iceberg.catalog import IcebergConfig, TableSource
from storage.objectstore import ObjectStore, S3Options, open_store


@pytest.fixture(params=["file+sqlite", "s3+postgres"])
def archive(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[ObjectStore, TableSource]:
    """A store and the table in it: a directory with a SQLite catalog, and S3 (moto) with a
    Postgres catalog."""
    if request.param == "file+sqlite":
        url, s3 = f"file://{tmp_path}/archive", S3Options()
        ledger_url = f"sqlite:///{tmp_path}/ledger.db"
    else:
        ledger_url = request.getfixturevalue("fresh_postgres_url")
        bucket = request.getfixturevalue("s3_bucket")
        s3 = S3Options(
            endpoint_url=request.getfixturevalue("s3_endpoint"), checksums="when_required"
        )
        url = f"s3://{bucket}/prefix"
    store = open_store(url, s3)
    return store, TableSource(IcebergConfig(storage_url=url, ledger_url=ledger_url, s3=s3))

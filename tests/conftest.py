from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from storage.ledger import Ledger
from tests.servers import free_port

S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server over HTTP on a loopback port, shared by the session."""
    for name, value in S3_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A fresh, empty bucket for one test."""
    name = f"archive-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A real PostgreSQL from ARCHIVER_TEST_POSTGRES_URL; skipped, visibly, when it is unset."""
    url = os.environ.get("ARCHIVER_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("ARCHIVER_TEST_POSTGRES_URL is not set; Postgres tests skipped")
    return url


# Ledger fixtures: a fresh ledger on SQLite and on Postgres.


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    """A new, empty Postgres database for one test, dropped after it.

    Fails, rather than skips, when ARCHIVER_TEST_POSTGRES_URL is set but Postgres cannot be
    reached: a configured database that is down must not pass as "skipped".
    """
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    base = make_url(postgres_url)
    params: dict[str, object] = {
        "host": base.host or "127.0.0.1",
        "port": base.port or 5432,
        "dbname": base.database or "postgres",
        **dict(base.query),
    }
    if base.username:
        params["user"] = base.username
    if base.password:
        params["password"] = base.password
    name = f"archiver_test_{uuid.uuid4().hex[:16]}"
    try:
        admin = psycopg.connect(autocommit=True, connect_timeout=5, **params)
    except psycopg.Error as exc:
        pytest.fail(f"ARCHIVER_TEST_POSTGRES_URL is set but Postgres is unreachable: {exc}")
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(autocommit=True, connect_timeout=5, **params) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh ledger URL: a SQLite file, or a new Postgres database (skipped when unset)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    """An open ledger on `ledger_url`, closed after the test."""
    opened = Ledger.open(ledger_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture(autouse=True, scope="session")
def _quiet_moto_request_log() -> None:
    """moto's server logs every request through werkzeug; failures are easier to read without."""
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)

"""Opening the ledger database: engines, SQLite pragmas, transactions and the schema migration.

SQLite writes take `BEGIN IMMEDIATE`, so concurrent writers (a `serve` process and a CLI command,
or several worker threads) queue on the busy timeout instead of failing half-way; Postgres writes
rely on row locks and advisory locks in the queries themselves.

Every wait on the database is bounded: connecting, each statement (and a transaction left idle,
so a stalled client cannot hold row locks for ever), a dead peer (TCP keepalives and a user
timeout), a free pooled connection, and SQLite's busy wait.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import StaticPool

from storage import lifecycle
from storage.errors import ErrorKind
from storage.ledger.models import LedgerError
from storage.ledger.moves import take_events
from storage.ledger.tables import LEDGER_SCHEMA_VERSION, meta, metadata

SQLITE_BUSY_TIMEOUT_SECONDS = 15
POOL_TIMEOUT_SECONDS = 10
# Connections kept open: enough for every thread of `serve` that reads or writes the ledger at
# once (intake's lane, the metrics and probe lanes, the worker, the scheduler). Past the pool
# SQLAlchemy opens overflow connections and closes them after each use, which costs a connect
# (and on SQLite the pragmas) per call: a burst of callbacks then spends its time reconnecting.
POOL_SIZE = 16
POOL_OVERFLOW = 8
# libpq settings for every Postgres connection, unless the ledger URL sets them itself.
POSTGRES_CONNECT_ARGS: dict[str, Any] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    # Milliseconds unacknowledged data may wait before the connection is dropped (Linux).
    "tcp_user_timeout": 15000,
    "options": "-c statement_timeout=30000 -c lock_timeout=15000 "
    "-c idle_in_transaction_session_timeout=60000",
}
_WRITE_OPTION = "ledger_write"
_MIGRATION_LOCK = zlib.crc32(b"chat-archiver:ledger:migrate")


# Changes from one schema version to the next, applied in order under the migration lock.
def _add_columns(table: str, columns: dict[str, str]) -> Callable[[Connection], None]:
    """A step that adds the columns `table` lacks (name → SQL type and default)."""

    def step(conn: Connection) -> None:
        present = {column["name"] for column in inspect(conn).get_columns(table)}
        for name, definition in columns.items():
            if name not in present:
                conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {definition}"))

    return step


_MIGRATIONS: dict[int, list[str | Callable[[Connection], None]]] = {
    # `split` became a state of its own; it used to be stored as `failed` with this reason.
    2: [
        "UPDATE ledger_windows SET state = 'split' "
        f"WHERE state = 'failed' AND reason = '{lifecycle.LEGACY_SPLIT_REASON}'"
    ],
    # Supersession by forced re-exports, and the shrink guard.
    3: [
        _add_columns(
            "ledger_exports",
            {
                "superseded_at": "TIMESTAMP WITH TIME ZONE",
                "forced": "BOOLEAN NOT NULL DEFAULT FALSE",
                "shrink_accepted": "BOOLEAN NOT NULL DEFAULT FALSE",
            },
        )
    ],
}


def advisory_key(name: str) -> int:
    """A stable Postgres advisory lock key for `name`."""
    return zlib.crc32(f"chat-archiver:ledger:{name}".encode())


class Database:
    """An engine plus the two kinds of transaction the ledger runs: read and write."""

    def __init__(self, url: str) -> None:
        parsed = _parse_url(url)
        self.safe_url = parsed.render_as_string(hide_password=True)
        self.dialect = parsed.get_backend_name()
        self._lock: AbstractContextManager[Any] = nullcontext()
        # SQLite lets one writer in at a time and makes the others poll with growing sleeps
        # (up to 100 ms each); writers of this process queue on a lock instead, and are woken
        # the moment it is free. Other processes (a CLI command) still meet the busy timeout.
        self._write_lock: threading.Lock | None = None
        self.engine = self._create_engine(parsed)

    def _create_engine(self, url: URL) -> Engine:
        try:
            if self.dialect == "postgresql":
                return create_engine(
                    url,
                    pool_pre_ping=True,
                    pool_size=POOL_SIZE,
                    max_overflow=POOL_OVERFLOW,
                    pool_timeout=POOL_TIMEOUT_SECONDS,
                    connect_args=postgres_connect_args(url),
                )
            if _is_sqlite_memory(url):
                # One shared connection: serialise every transaction on it.
                self._lock = threading.RLock()
                engine = create_engine(
                    url, poolclass=StaticPool, connect_args={"check_same_thread": False}
                )
            else:
                self._write_lock = threading.Lock()
                engine = create_engine(
                    url,
                    pool_size=POOL_SIZE,
                    max_overflow=POOL_OVERFLOW,
                    pool_timeout=POOL_TIMEOUT_SECONDS,
                    connect_args={"check_same_thread": False},
                )
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise LedgerError(
                f"cannot use ledger URL {self.safe_url}: {exc}", kind=ErrorKind.USER
            ) from exc
        _install_sqlite_hooks(engine, wal=not _is_sqlite_memory(url))
        return engine

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A short write transaction (BEGIN IMMEDIATE on SQLite)."""
        with self._transaction(write=True) as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self._transaction(write=False) as conn:
            yield conn

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Connection]:
        events: list[lifecycle.Event] = []
        with self._lock, self._writer(write):
            try:
                with self.engine.connect() as conn:
                    conn.execution_options(**{_WRITE_OPTION: write})
                    take_events(conn)
                    try:
                        with conn.begin():
                            yield conn
                    finally:
                        events = take_events(conn)
            except DBAPIError as exc:
                raise LedgerError(f"ledger {self.safe_url}: {first_line(exc)}") from exc
            except PoolTimeout as exc:
                raise LedgerError(
                    f"ledger {self.safe_url}: no free connection within {POOL_TIMEOUT_SECONDS} s"
                ) from exc
        # Only here has the transaction committed: the transitions it made happened.
        for happened in events:
            lifecycle.emit(happened)

    @contextmanager
    def _writer(self, write: bool) -> Iterator[None]:
        if not write or self._write_lock is None:
            yield
            return
        if not self._write_lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_SECONDS):
            raise LedgerError(
                f"ledger {self.safe_url}: another write held it for {SQLITE_BUSY_TIMEOUT_SECONDS} s"
            )
        try:
            yield
        finally:
            self._write_lock.release()

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def migrate(self) -> None:
        """Creates or upgrades the schema; safe when several processes open the ledger at once."""
        with self.write() as conn:
            if self.is_postgres:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            metadata.create_all(conn)
            found = conn.scalar(select(meta.c.value).where(meta.c.key == "schema_version"))
            version = int(found) if found is not None else 0
            if version > LEDGER_SCHEMA_VERSION:
                raise LedgerError(
                    f"ledger {self.safe_url} has schema version {version}, newer than this "
                    f"chat-archiver understands ({LEDGER_SCHEMA_VERSION}); upgrade chat-archiver",
                    kind=ErrorKind.USER,
                )
            if version == 0:
                conn.execute(
                    meta.insert(),
                    [
                        {"key": "schema_version", "value": str(LEDGER_SCHEMA_VERSION)},
                        {"key": "created_at", "value": datetime.now(UTC).isoformat()},
                    ],
                )
                return
            for step in range(version + 1, LEDGER_SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS.get(step, []):
                    if isinstance(statement, str):
                        conn.execute(text(statement))
                    else:
                        statement(conn)
            if version != LEDGER_SCHEMA_VERSION:
                conn.execute(
                    meta.update()
                    .where(meta.c.key == "schema_version")
                    .values(value=str(LEDGER_SCHEMA_VERSION))
                )

    def close(self) -> None:
        self.engine.dispose()


def _parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise LedgerError(
            "invalid ledger URL: expected sqlite:///path/to/file.db or "
            "postgresql+psycopg://user@host:5432/database",
            kind=ErrorKind.USER,
        ) from exc
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        if parsed.get_driver_name() not in ("psycopg", "postgresql", "postgres"):
            raise LedgerError(
                f"unsupported Postgres driver in ledger URL {parsed.drivername!r}: "
                "use postgresql+psycopg://",
                kind=ErrorKind.USER,
            )
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed
    raise LedgerError(
        f"unsupported ledger database {backend!r}: use sqlite:///path or postgresql+psycopg://...",
        kind=ErrorKind.USER,
    )


def postgres_connect_args(url: URL) -> dict[str, Any]:
    """The bounded-wait defaults, minus whatever the URL's own query string sets."""
    return {name: value for name, value in POSTGRES_CONNECT_ARGS.items() if name not in url.query}


def _is_sqlite_memory(url: URL) -> bool:
    database = url.database or ""
    return database in ("", ":memory:") or url.query.get("mode") == "memory"


def _install_sqlite_hooks(engine: Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy emits BEGIN itself (below), so the driver must not.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
            if wal:
                _use_wal(cursor)
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(_WRITE_OPTION, True)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _use_wal(cursor: sqlite3.Cursor) -> None:
    """WAL is a property of the file, set by the first connection. Processes that open a new
    file at once race to set it, and the losers are told SQLITE_BUSY at once (the busy timeout
    does not cover this pragma), so they try again, within the same bound."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            busy = error.sqlite_errorcode == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def first_line(exc: DBAPIError) -> str:
    """The driver's message in one line, for errors a user reads."""
    message = str(exc.orig).strip() or type(exc.orig).__name__
    return message.splitlines()[0]

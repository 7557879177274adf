"""The ledger's schema, one definition for SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

from storage.layout import Window
from storage.ledger.models import CallbackRecord, CallbackState, WindowRecord
from storage.lifecycle import WindowState

SCHEMA_VERSION = 3


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on every dialect.

    SQLite has no timezone type: values are stored as naive UTC text (which sorts and compares
    correctly) and read back with UTC attached.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"the ledger stores timezone-aware times only, got {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData()

meta = Table(
    "ledger_meta",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)

windows = Table(
    "ledger_windows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("stream", String(100), nullable=False),
    Column("window_start", UTCDateTime, nullable=False),
    Column("window_end", UTCDateTime, nullable=False),
    Column("state", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("export_id", String(64)),
    Column("reason", Text),
    Column("rows", BigInteger),
    Column("rejects", BigInteger),
    Column("next_request_at", UTCDateTime),
    Column("requested_at", UTCDateTime),
    Column("deadline_at", UTCDateTime),
    Column("committed_at", UTCDateTime),
    Column("manifest_key", Text),
    Column("lease_owner", String(200)),
    Column("lease_until", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("stream", "window_start", "window_end", name="uq_ledger_windows_span"),
    Index("ix_ledger_windows_state", "state", "window_start"),
)

exports = Table(
    "ledger_exports",
    metadata,
    Column("export_id", String(64), primary_key=True),
    Column("window_id", Integer, ForeignKey("ledger_windows.id"), nullable=False, index=True),
    Column("token_sha256", String(64), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    # Set when a forced re-export of the window superseded this export: never processed again.
    Column("superseded_at", UTCDateTime),
    # A re-export of a window that was committed before (the shrink guard compares the two).
    Column("forced", Boolean, nullable=False, default=False),
    Column("shrink_accepted", Boolean, nullable=False, default=False),
)

callbacks = Table(
    "ledger_callbacks",
    metadata,
    # Arrival order: the newest pending callback of a window is the one processed.
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("callback_id", String(64), nullable=False, unique=True),
    Column("export_id", String(64), ForeignKey("ledger_exports.export_id"), nullable=False),
    Column("window_id", Integer, ForeignKey("ledger_windows.id"), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("raw_key", Text, nullable=False),
    Column("body_sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("state", String(20), nullable=False),
    Column("reason", Text),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_ledger_callbacks_window", "window_id", "state"),
    Index("ix_ledger_callbacks_export", "export_id"),
)


# Processes that lease windows and can be seen to die (storage/ledger/owners.py).
owners = Table(
    "ledger_owners",
    metadata,
    Column("owner", String(200), primary_key=True),
    Column("host", String(200), nullable=False),
    Column("pid", String(20), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
)


def window_of(row: Any) -> Window:
    return Window(row.window_start, row.window_end)


def window_record(row: Any) -> WindowRecord:
    return WindowRecord(
        id=row.id,
        stream=row.stream,
        window=window_of(row),
        state=WindowState(row.state),
        attempts=row.attempts,
        export_id=row.export_id,
        reason=row.reason,
        rows=row.rows,
        rejects=row.rejects,
        requested_at=row.requested_at,
        deadline_at=row.deadline_at,
        committed_at=row.committed_at,
        updated_at=row.updated_at,
        next_request_at=row.next_request_at,
        manifest_key=row.manifest_key,
    )


def callback_record(row: Any) -> CallbackRecord:
    return CallbackRecord(
        callback_id=row.callback_id,
        export_id=row.export_id,
        received_at=row.received_at,
        raw_key=row.raw_key,
        body_sha256=row.body_sha256,
        size=row.size,
        state=cast(CallbackState, row.state),
        reason=row.reason,
    )

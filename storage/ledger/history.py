"""What happened to one window, and how much raw data is kept: for the status page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select

from storage.ledger.models import CallbackRecord
from storage.ledger.tables import callback_record, callbacks, exports


@dataclass(frozen=True)
class AttemptRecord:
    """One request of a window (never its token)."""

    export_id: str
    attempt: int
    requested_at: datetime


def attempts(conn: Connection, window_id: int) -> list[AttemptRecord]:
    rows = conn.execute(
        select(exports.c.export_id, exports.c.attempt, exports.c.requested_at)
        .where(exports.c.window_id == window_id)
        .order_by(exports.c.attempt, exports.c.requested_at)
    ).all()
    return [AttemptRecord(row.export_id, row.attempt, row.requested_at) for row in rows]


def window_callbacks(conn: Connection, window_id: int) -> list[CallbackRecord]:
    """Every stored callback of the window, whichever attempt it answered, in arrival order."""
    rows = conn.execute(
        select(callbacks).where(callbacks.c.window_id == window_id).order_by(callbacks.c.seq)
    ).all()
    return [callback_record(row) for row in rows]


def raw_bytes(conn: Connection) -> int:
    """Bytes of callback bodies stored raw, as recorded when each was stored."""
    return int(conn.scalar(select(func.coalesce(func.sum(callbacks.c.size), 0))) or 0)

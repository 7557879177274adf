"""Planning and requesting windows: the scheduler's side of the ledger.

Every function runs inside one transaction opened by the caller. On Postgres, rows are claimed
with `FOR UPDATE SKIP LOCKED` so replicas never request one window twice; on SQLite the caller's
`BEGIN IMMEDIATE` serialises writers.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, and_, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite

from storage.errors import ErrorKind
from storage.layout import Window
from storage.ledger.connect import advisory_key
from storage.ledger.models import ExportAttempt, LedgerError
from storage.ledger.moves import move, queue
from storage.ledger.tables import exports, window_of, windows
from storage.lifecycle import Event, Step, WindowState

_INSERT_CHUNK = 500

log = logging.getLogger("chat_archiver.ledger")


def insert_ignoring_conflicts(conn: Connection, table: Any) -> Any:
    """`INSERT .. ON CONFLICT DO NOTHING` of the connection's dialect (not yet finished)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def lock_window(conn: Connection, window_id: int) -> Row[Any]:
    """The window's row, locked until the transaction ends (Postgres; SQLite is already)."""
    return lock_windows(conn, [window_id])[window_id]


def lock_windows(conn: Connection, window_ids: list[int]) -> dict[int, Row[Any]]:
    """The windows' rows by id, locked in id order in one statement, until the transaction
    ends (Postgres; SQLite is already)."""
    if not window_ids:
        return {}
    rows = conn.execute(
        select(windows).where(windows.c.id.in_(window_ids)).order_by(windows.c.id).with_for_update()
    ).all()
    found = {row.id: row for row in rows}
    missing = sorted(set(window_ids) - set(found))
    if missing:
        raise LedgerError(f"no window with id {missing[0]} in the ledger")
    return found


def add_windows(conn: Connection, stream: str, spans: Sequence[Window], now: datetime) -> int:
    """Inserts the windows not yet in the ledger as `planned`; returns how many were new."""
    unique = list(dict.fromkeys(spans))
    added = 0
    for offset in range(0, len(unique), _INSERT_CHUNK):
        values = [
            {
                "stream": stream,
                "window_start": span.start,
                "window_end": span.end,
                "state": WindowState.PLANNED.value,
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            for span in unique[offset : offset + _INSERT_CHUNK]
        ]
        statement = (
            insert_ignoring_conflicts(conn, windows)
            .values(values)
            .on_conflict_do_nothing(index_elements=["stream", "window_start", "window_end"])
            .returning(windows.c.id)
        )
        added += len(conn.execute(statement).all())
    if added:
        queue(conn, Event(Step.PLAN, f"{added} new window(s)", {"added": added}))
    return added


def plan(conn: Connection, stream: str, spans: Sequence[Window], now: datetime) -> int:
    if conn.dialect.name == "postgresql":
        locked = conn.scalar(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": advisory_key(f"plan:{stream}")}
        )
        if not locked:
            # Another replica is planning the same stream right now; its windows are ours too.
            return 0
    from storage.ledger.replacing import fit_to_ledger

    return add_windows(conn, stream, fit_to_ledger(conn, stream, spans), now)


def force_due(
    conn: Connection,
    stream: str,
    spans: Sequence[Window],
    *,
    include_committed: bool,
    rerequest: bool = False,
    now: datetime,
) -> int:
    """Makes the windows due now, except those in flight (and committed ones unless asked).

    A committed window made due is a forced re-export: every earlier export of it is superseded.
    With `rerequest`, a `requested` window still waiting for its callback is due again too (its
    earlier attempts stay eligible); a `received` one is being processed and is left alone.
    """
    if not spans:
        return 0
    add_windows(conn, stream, spans, now)
    wanted = {(span.start, span.end) for span in spans}
    rows = conn.execute(
        select(windows)
        .where(
            windows.c.stream == stream,
            windows.c.window_start >= min(span.start for span in spans),
            windows.c.window_start < max(span.end for span in spans),
        )
        .with_for_update()
    ).all()
    changed = 0
    for row in rows:
        if (row.window_start, row.window_end) not in wanted:
            continue
        waiting = (
            row.state == WindowState.REQUESTED
            and row.deadline_at is not None
            and row.deadline_at > now
        )
        if row.state in (WindowState.RECEIVED, WindowState.SPLIT) or (waiting and not rerequest):
            continue
        if row.state == WindowState.COMMITTED and not include_committed:
            continue
        fields: dict[str, Any] = {}
        if row.state == WindowState.COMMITTED:
            fields["superseded_exports"] = _supersede_exports(conn, row.id, now)
        # A re-request keeps counting attempts; anything else starts afresh.
        attempts = row.attempts if waiting else 0
        move(conn, row, Step.MAKE_DUE, now, log=fields, attempts=attempts, next_request_at=now)
        changed += 1
    return changed


def _supersede_exports(conn: Connection, window_id: int, now: datetime) -> int:
    """Marks every export of the window so far as superseded; returns how many."""
    result = conn.execute(
        exports.update()
        .where(exports.c.window_id == window_id, exports.c.superseded_at.is_(None))
        .values(superseded_at=now)
    )
    return result.rowcount


def claim_due(
    conn: Connection,
    stream: str,
    now: datetime,
    *,
    limit: int,
    callback_timeout: timedelta,
    max_attempts: int,
) -> list[ExportAttempt]:
    _fail_exhausted(conn, stream, now, max_attempts)
    if limit <= 0:
        return []
    due = or_(
        and_(
            windows.c.state == WindowState.PLANNED.value,
            or_(windows.c.next_request_at.is_(None), windows.c.next_request_at <= now),
        ),
        and_(
            windows.c.state == WindowState.REQUESTED.value,
            windows.c.deadline_at <= now,
            windows.c.attempts < max_attempts,
        ),
    )
    rows = conn.execute(
        select(windows)
        .where(windows.c.stream == stream, due)
        .order_by(windows.c.window_start, windows.c.window_end)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    claimed = []
    for row in rows:
        step = Step.REQUEST if row.state == WindowState.PLANNED else Step.REQUEST_AFTER_TIMEOUT
        claimed.append(_new_attempt(conn, row, step, now, callback_timeout))
    return claimed


def _new_attempt(
    conn: Connection, row: Any, step: Step, now: datetime, callback_timeout: timedelta
) -> ExportAttempt:
    """A new export id and token for the window in `row`, taken through `step`."""
    export_id = uuid.uuid4().hex
    token = secrets.token_urlsafe(32)
    attempt = row.attempts + 1
    conn.execute(
        exports.insert().values(
            export_id=export_id,
            window_id=row.id,
            token_sha256=hashlib.sha256(token.encode()).hexdigest(),
            attempt=attempt,
            requested_at=now,
            # Committed before: this asks for newer data than the archive holds.
            forced=row.committed_at is not None,
        )
    )
    move(
        conn,
        row,
        step,
        now,
        log={"export_id": export_id, "attempt": attempt, "previous_export_id": row.export_id},
        attempts=attempt,
        export_id=export_id,
        requested_at=now,
        deadline_at=now + callback_timeout,
    )
    return ExportAttempt(row.id, window_of(row), export_id, token, attempt)


def _fail_exhausted(conn: Connection, stream: str, now: datetime, max_attempts: int) -> None:
    """Windows whose last callback timed out and that have no attempts left become failed."""
    rows = conn.execute(
        select(windows)
        .where(
            windows.c.stream == stream,
            windows.c.state == WindowState.REQUESTED.value,
            windows.c.deadline_at <= now,
            windows.c.attempts >= max_attempts,
        )
        .with_for_update(skip_locked=True)
    ).all()
    for row in rows:
        reason = f"no callback after {row.attempts} attempts"
        move(conn, row, Step.TIME_OUT, now, log={"reason": reason}, reason=reason)


def request_failed(
    conn: Connection, export_id: str, *, reason: str, retry_at: datetime | None, now: datetime
) -> None:
    window_id = conn.scalar(select(exports.c.window_id).where(exports.c.export_id == export_id))
    if window_id is None:
        raise LedgerError(f"unknown export id {export_id!r}", kind=ErrorKind.USER)
    row = lock_window(conn, window_id)
    if row.state != WindowState.REQUESTED or row.export_id != export_id:
        # A later attempt or a callback has moved the window on; this refusal is history.
        return
    fields = {"export_id": export_id, "reason": reason}
    attempts = max(row.attempts - 1, 0)
    if retry_at is None:
        move(conn, row, Step.REQUEST_REFUSED, now, log=fields, attempts=attempts, reason=reason)
        return
    move(
        conn,
        row,
        Step.REQUEST_DEFERRED,
        now,
        log=fields | {"retry_at": retry_at.isoformat()},
        attempts=attempts,
        next_request_at=retry_at,
        reason=reason,
    )


def replace_with_halves(
    conn: Connection, window_id: int, halves: tuple[Window, Window], now: datetime, reason: str
) -> None:
    row = lock_window(conn, window_id)
    if row.state == WindowState.RECEIVED:
        # A callback of an earlier attempt arrived meanwhile: the window is whole after all.
        log.warning(
            "window_split_skipped",
            extra={"window": str(window_of(row)), "state": row.state, "reason": reason},
        )
        return
    move(
        conn,
        row,
        Step.SPLIT,
        now,
        log={"halves": [str(half) for half in halves], "reason": reason},
        reason=f"split into halves: {reason}",
    )
    add_windows(conn, row.stream, halves, now)

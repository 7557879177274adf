"""Callbacks and their processing: the receiver's and the worker's side of the ledger.

Every function runs inside one transaction opened by the caller, and locks the window row
before it touches the window's callbacks, so concurrent callbacks of one window are decided
one at a time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, exists, select

from storage.errors import ErrorKind
from storage.ledger.models import LedgerError, ProcessingClaim
from storage.ledger.moves import move
from storage.ledger.planning import lock_window
from storage.ledger.tables import callbacks, exports, window_of, windows
from storage.lifecycle import RETIRED, Step, WindowState

CallbackOutcome = Literal["accepted", "duplicate", "superseded"]


def record_callback(
    conn: Connection,
    *,
    export_id: str,
    callback_id: str,
    received_at: datetime,
    raw_key: str,
    body_sha256: str,
    size: int,
) -> CallbackOutcome:
    window_id = conn.scalar(select(exports.c.window_id).where(exports.c.export_id == export_id))
    if window_id is None:
        raise LedgerError(f"unknown export id {export_id!r}", kind=ErrorKind.USER)
    row = lock_window(conn, window_id)
    same_body_pending = conn.scalar(
        select(
            exists().where(
                callbacks.c.window_id == window_id,
                callbacks.c.body_sha256 == body_sha256,
                callbacks.c.state == "pending",
            )
        )
    )
    outcome: CallbackOutcome
    if row.state in RETIRED:
        outcome = "superseded"
    elif row.state == WindowState.COMMITTED or same_body_pending:
        outcome = "duplicate"
    else:
        outcome = "accepted"
    conn.execute(
        callbacks.insert().values(
            callback_id=callback_id,
            export_id=export_id,
            window_id=window_id,
            received_at=received_at,
            raw_key=raw_key,
            body_sha256=body_sha256,
            size=size,
            state="pending" if outcome == "accepted" else outcome,
            updated_at=received_at,
        )
    )
    if outcome == "accepted":
        move(
            conn,
            row,
            Step.RECEIVE,
            received_at,
            log={"export_id": export_id, "callback_id": callback_id},
        )
    return outcome


def claim_received(
    conn: Connection, owner: str, now: datetime, lease: timedelta
) -> ProcessingClaim | None:
    has_pending = exists().where(
        callbacks.c.window_id == windows.c.id, callbacks.c.state == "pending"
    )
    row = conn.execute(
        select(windows)
        .where(
            windows.c.state == WindowState.RECEIVED.value,
            (windows.c.lease_until.is_(None)) | (windows.c.lease_until <= now),
            has_pending,
        )
        .order_by(windows.c.window_start, windows.c.id)
        .limit(1)
        .with_for_update(skip_locked=True, of=windows)
    ).first()
    if row is None:
        return None
    newest = conn.execute(
        select(
            callbacks.c.callback_id, callbacks.c.export_id, callbacks.c.raw_key, exports.c.attempt
        )
        .join(exports, exports.c.export_id == callbacks.c.export_id)
        .where(callbacks.c.window_id == row.id, callbacks.c.state == "pending")
        .order_by(callbacks.c.seq.desc())
        .limit(1)
    ).one()
    conn.execute(
        windows.update()
        .where(windows.c.id == row.id)
        .values(lease_owner=owner, lease_until=now + lease, updated_at=now)
    )
    return ProcessingClaim(
        window_id=row.id,
        window=window_of(row),
        export_id=newest.export_id,
        callback_id=newest.callback_id,
        raw_key=newest.raw_key,
        attempt=newest.attempt,
    )


def renew_lease(conn: Connection, window_id: int, owner: str, until: datetime) -> bool:
    result = conn.execute(
        windows.update()
        .where(
            windows.c.id == window_id,
            windows.c.lease_owner == owner,
            windows.c.state == WindowState.RECEIVED.value,
        )
        .values(lease_until=until)
    )
    return result.rowcount == 1


def release(conn: Connection, window_id: int, owner: str) -> None:
    conn.execute(
        windows.update()
        .where(windows.c.id == window_id, windows.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )


def commit(
    conn: Connection,
    claim: ProcessingClaim,
    *,
    rows: int,
    rejects: int,
    manifest_key: str,
    now: datetime,
) -> None:
    """The manifest is written: the window is committed."""
    row = lock_window(conn, claim.window_id)
    move(
        conn,
        row,
        Step.COMMIT,
        now,
        log={"export_id": claim.export_id, "rows": rows, "rejects": rejects},
        rows=rows,
        rejects=rejects,
        committed_at=now,
        export_id=claim.export_id,
        manifest_key=manifest_key,
    )
    _set_callback(conn, claim.callback_id, "processed", None, now)
    conn.execute(
        callbacks.update()
        .where(
            callbacks.c.window_id == claim.window_id,
            callbacks.c.state == "pending",
            callbacks.c.callback_id != claim.callback_id,
        )
        .values(state="superseded", updated_at=now)
    )


def quarantine(conn: Connection, claim: ProcessingClaim, *, reason: str, now: datetime) -> None:
    row = lock_window(conn, claim.window_id)
    _set_callback(conn, claim.callback_id, "quarantined", reason, now)
    if row.state != WindowState.RECEIVED:
        return
    if _other_pending(conn, claim):
        _clear_lease(conn, claim.window_id, now)
        return
    move(
        conn,
        row,
        Step.QUARANTINE,
        now,
        log={"export_id": claim.export_id, "reason": reason},
        reason=reason,
    )


def attempt_failed(
    conn: Connection,
    claim: ProcessingClaim,
    *,
    reason: str,
    now: datetime,
    max_attempts: int,
    retry_at: datetime,
) -> None:
    row = lock_window(conn, claim.window_id)
    _set_callback(conn, claim.callback_id, "failed", reason, now)
    if row.state != WindowState.RECEIVED:
        return
    if _other_pending(conn, claim):
        _clear_lease(conn, claim.window_id, now)
        return
    fields = {"export_id": claim.export_id, "reason": reason}
    if row.attempts >= max_attempts:
        move(conn, row, Step.GIVE_UP, now, log=fields, reason=reason)
    else:
        move(conn, row, Step.RETRY, now, log=fields, next_request_at=retry_at, reason=reason)


def requeue(conn: Connection, *, export_id: str | None, quarantined: bool, now: datetime) -> int:
    if export_id is None and not quarantined:
        raise LedgerError(
            "nothing to replay: give an export id, or ask for quarantined windows",
            kind=ErrorKind.USER,
        )
    requeued = 0
    if export_id is not None:
        window_id = conn.scalar(select(exports.c.window_id).where(exports.c.export_id == export_id))
        if window_id is None:
            raise LedgerError(f"unknown export id {export_id!r}", kind=ErrorKind.USER)
        row = lock_window(conn, window_id)
        newest = conn.scalar(
            select(callbacks.c.callback_id)
            .where(callbacks.c.export_id == export_id)
            .order_by(callbacks.c.seq.desc())
            .limit(1)
        )
        if newest is not None:
            _set_callback(conn, newest, "pending", None, now)
            _mark_received(conn, row, now)
            requeued += 1
    if quarantined:
        rows = conn.execute(
            select(windows)
            .where(windows.c.state == WindowState.QUARANTINED.value)
            .with_for_update()
        ).all()
        for row in rows:
            newest = conn.scalar(
                select(callbacks.c.callback_id)
                .where(callbacks.c.window_id == row.id, callbacks.c.state == "quarantined")
                .order_by(callbacks.c.seq.desc())
                .limit(1)
            )
            if newest is None:
                continue
            _set_callback(conn, newest, "pending", None, now)
            _mark_received(conn, row, now)
            requeued += 1
    return requeued


def _set_callback(
    conn: Connection, callback_id: str, state: str, reason: str | None, now: datetime
) -> None:
    conn.execute(
        callbacks.update()
        .where(callbacks.c.callback_id == callback_id)
        .values(state=state, reason=reason, updated_at=now)
    )


def _mark_received(conn: Connection, row: Any, now: datetime) -> None:
    move(conn, row, Step.REPLAY, now)


def _other_pending(conn: Connection, claim: ProcessingClaim) -> bool:
    return bool(
        conn.scalar(
            select(
                exists().where(
                    callbacks.c.window_id == claim.window_id,
                    callbacks.c.state == "pending",
                    callbacks.c.callback_id != claim.callback_id,
                )
            )
        )
    )


def _clear_lease(conn: Connection, window_id: int, now: datetime) -> None:
    conn.execute(
        windows.update()
        .where(windows.c.id == window_id)
        .values(lease_owner=None, lease_until=None, updated_at=now)
    )

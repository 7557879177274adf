"""Callbacks and their processing: the receiver's and the worker's side of the ledger.

Every function runs inside one transaction opened by the caller, and locks the window row
before it touches the window's callbacks, so concurrent callbacks of one window are decided
one at a time.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, exists, select

from storage.errors import ErrorKind
from storage.ledger import owners
from storage.ledger.models import Fenced, LedgerError, ProcessingClaim
from storage.ledger.moves import move
from storage.ledger.planning import lock_window
from storage.ledger.tables import callbacks, exports, window_of, windows
from storage.lifecycle import RETIRED, Step, WindowState

CallbackOutcome = Literal["accepted", "duplicate", "superseded"]

log = logging.getLogger("chat_archiver.ledger")


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
    export = conn.execute(
        select(exports.c.window_id, exports.c.superseded_at).where(exports.c.export_id == export_id)
    ).first()
    if export is None:
        raise LedgerError(f"unknown export id {export_id!r}", kind=ErrorKind.USER)
    window_id = export.window_id
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
    if row.state in RETIRED or export.superseded_at is not None:
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
    """Leases the oldest received window that no live lease holds; see Ledger.claim_received."""
    eligible_pending = exists().where(
        callbacks.c.window_id == windows.c.id,
        callbacks.c.state == "pending",
        callbacks.c.export_id == exports.c.export_id,
        exports.c.superseded_at.is_(None),
    )
    candidates = conn.execute(
        select(windows)
        .where(windows.c.state == WindowState.RECEIVED.value, eligible_pending)
        .order_by(windows.c.window_start, windows.c.id)
        .limit(_CANDIDATES)
        .with_for_update(skip_locked=True, of=windows)
    ).all()
    for row in candidates:
        if _lease_free(conn, row, owner, now):
            return _claim(conn, row, owner, now, lease)
    return None


# How many received windows one claim looks at, past those held by live leases.
_CANDIDATES = 50


def _lease_free(conn: Connection, row: Any, owner: str, now: datetime) -> bool:
    if row.lease_until is None or row.lease_until <= now:
        return True
    return row.lease_owner != owner and owners.dead(conn, row.lease_owner)


def _claim(
    conn: Connection, row: Any, owner: str, now: datetime, lease: timedelta
) -> ProcessingClaim:
    # Whichever eligible export delivered first is processed; of its callbacks, the newest
    # (a platform that delivers again may send a fresher link).
    first = conn.execute(
        select(callbacks.c.export_id)
        .join(exports, exports.c.export_id == callbacks.c.export_id)
        .where(
            callbacks.c.window_id == row.id,
            callbacks.c.state == "pending",
            exports.c.superseded_at.is_(None),
        )
        .order_by(callbacks.c.seq)
        .limit(1)
    ).scalar_one()
    chosen = conn.execute(
        select(
            callbacks.c.callback_id,
            callbacks.c.export_id,
            callbacks.c.raw_key,
            exports.c.attempt,
            exports.c.forced,
            exports.c.shrink_accepted,
        )
        .join(exports, exports.c.export_id == callbacks.c.export_id)
        .where(callbacks.c.export_id == first, callbacks.c.state == "pending")
        .order_by(callbacks.c.seq.desc())
        .limit(1)
    ).one()
    if row.lease_owner is not None and row.lease_owner != owner:
        taken = {"window": str(window_of(row)), "from_owner": row.lease_owner}
        log.info("lease_taken_over", extra=taken | {"lease_until": str(row.lease_until)})
    conn.execute(
        windows.update()
        .where(windows.c.id == row.id)
        .values(lease_owner=owner, lease_until=now + lease, updated_at=now)
    )
    return ProcessingClaim(
        window_id=row.id,
        window=window_of(row),
        export_id=chosen.export_id,
        callback_id=chosen.callback_id,
        raw_key=chosen.raw_key,
        attempt=chosen.attempt,
        owner=owner,
        forced=bool(chosen.forced),
        committed_rows=row.rows if chosen.forced else None,
        shrink_accepted=bool(chosen.shrink_accepted),
    )


def leased_elsewhere(conn: Connection, owner: str, now: datetime) -> list[tuple[Any, str, Any]]:
    """Received windows waiting for another live owner's lease: (window, owner, until)."""
    rows = conn.execute(
        select(
            windows.c.window_start,
            windows.c.window_end,
            windows.c.lease_owner,
            windows.c.lease_until,
        )
        .where(
            windows.c.state == WindowState.RECEIVED.value,
            windows.c.lease_until > now,
            windows.c.lease_owner != owner,
        )
        .order_by(windows.c.window_start)
        .limit(_CANDIDATES)
    ).all()
    return [
        (window_of(row), row.lease_owner, row.lease_until)
        for row in rows
        if not owners.dead(conn, row.lease_owner)
    ]


def check_fence(conn: Connection, claim: ProcessingClaim, now: datetime) -> None:
    """Raises Fenced unless the claim still holds its window's lease and its export is eligible."""
    row = conn.execute(select(windows).where(windows.c.id == claim.window_id)).first()
    _fence(conn, row, claim, now)


def _fence(conn: Connection, row: Any, claim: ProcessingClaim, now: datetime | None) -> None:
    if row is None or row.state != WindowState.RECEIVED:
        state = "gone" if row is None else row.state
        raise Fenced(f"the window is {state} now, no longer received")
    if row.lease_owner != claim.owner:
        raise Fenced(f"the lease passed to {row.lease_owner or 'nobody'}")
    if now is not None and (row.lease_until is None or row.lease_until <= now):
        raise Fenced("the lease ran out")
    export = conn.execute(
        select(exports.c.superseded_at).where(exports.c.export_id == claim.export_id)
    ).first()
    if export is None or export.superseded_at is not None:
        raise Fenced(f"export {claim.export_id} was superseded by a forced re-export")
    state = conn.scalar(
        select(callbacks.c.state).where(callbacks.c.callback_id == claim.callback_id)
    )
    if state != "pending":
        raise Fenced(f"callback {claim.callback_id} is {state} now, no longer pending")


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
    """The manifest is written: the window is committed, if the claim still holds its lease
    and its export is still eligible (a compare-and-set on both; Fenced otherwise)."""
    row = lock_window(conn, claim.window_id)
    _fence(conn, row, claim, None)
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
    # The export's other deliveries were replaced by this one; other exports' are duplicates.
    for same_export, state in ((True, "superseded"), (False, "duplicate")):
        conn.execute(
            callbacks.update()
            .where(
                callbacks.c.window_id == claim.window_id,
                callbacks.c.state == "pending",
                callbacks.c.callback_id != claim.callback_id,
                (callbacks.c.export_id == claim.export_id)
                if same_export
                else (callbacks.c.export_id != claim.export_id),
            )
            .values(state=state, updated_at=now)
        )


def quarantine(conn: Connection, claim: ProcessingClaim, *, reason: str, now: datetime) -> None:
    row = lock_window(conn, claim.window_id)
    _fence(conn, row, claim, None)
    _set_callback(conn, claim.callback_id, "quarantined", reason, now)
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
    _fence(conn, row, claim, None)
    _set_callback(conn, claim.callback_id, "failed", reason, now)
    if _other_pending(conn, claim):
        _clear_lease(conn, claim.window_id, now)
        return
    fields = {"export_id": claim.export_id, "reason": reason}
    if row.attempts >= max_attempts:
        move(conn, row, Step.GIVE_UP, now, log=fields, reason=reason)
    else:
        move(conn, row, Step.RETRY, now, log=fields, next_request_at=retry_at, reason=reason)


def requeue(
    conn: Connection,
    *,
    export_id: str | None,
    quarantined: bool,
    now: datetime,
    accept_shrink: bool = False,
) -> int:
    if export_id is None and not quarantined:
        raise LedgerError(
            "nothing to replay: give an export id, or ask for quarantined windows",
            kind=ErrorKind.USER,
        )
    requeued = 0
    if export_id is not None:
        export = conn.execute(select(exports).where(exports.c.export_id == export_id)).first()
        if export is None:
            raise LedgerError(f"unknown export id {export_id!r}", kind=ErrorKind.USER)
        if export.superseded_at is not None:
            raise LedgerError(
                f"export {export_id} was superseded by a forced re-export of its window; "
                "replay the window's newest export instead",
                kind=ErrorKind.USER,
            )
        window_id = export.window_id
        if accept_shrink:
            conn.execute(
                exports.update()
                .where(exports.c.export_id == export_id)
                .values(shrink_accepted=True)
            )
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
                    callbacks.c.export_id == exports.c.export_id,
                    exports.c.superseded_at.is_(None),
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

"""Recording a callback: the receiver's side of the ledger, deciding accepted, duplicate or
superseded under the window's row lock, so concurrent callbacks of one window are decided one at
a time."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, exists, select

from storage.errors import ErrorKind
from storage.ledger.models import LedgerError
from storage.ledger.moves import move
from storage.ledger.planning import lock_window
from storage.ledger.tables import callbacks, exports
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

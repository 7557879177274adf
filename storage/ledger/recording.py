"""Recording a callback: the receiver's side of the ledger, deciding accepted, duplicate or
superseded under the window's row lock, so concurrent callbacks of one window are decided one at
a time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from sqlalchemy import Connection, exists, select

from storage.errors import ErrorKind
from storage.ledger.models import CallbackReceipt, LedgerError
from storage.ledger.moves import move
from storage.ledger.planning import lock_window
from storage.ledger.tables import callbacks, exports
from storage.lifecycle import RETIRED, Step, WindowState

CallbackOutcome = Literal["accepted", "duplicate", "superseded"]


def record_callbacks(
    conn: Connection, receipts: Sequence[CallbackReceipt]
) -> list[CallbackOutcome | LedgerError]:
    """Each receipt's outcome, in order, or the USER LedgerError of one whose export is not in
    the ledger (nothing is written for it). Windows are locked in id order, so two groups
    recorded at once (two replicas) never each wait for a lock the other holds."""
    wanted = sorted({receipt.export_id for receipt in receipts})
    found = {
        row.export_id: row
        for row in conn.execute(
            select(exports.c.export_id, exports.c.window_id, exports.c.superseded_at).where(
                exports.c.export_id.in_(wanted)
            )
        )
    }
    outcomes: dict[int, CallbackOutcome | LedgerError] = {}
    for index, receipt in enumerate(receipts):
        if receipt.export_id not in found:
            outcomes[index] = LedgerError(
                f"unknown export id {receipt.export_id!r}", kind=ErrorKind.USER
            )
    known = [index for index in range(len(receipts)) if index not in outcomes]
    for index in sorted(known, key=lambda i: found[receipts[i].export_id].window_id):
        export = found[receipts[index].export_id]
        superseded = export.superseded_at is not None
        outcomes[index] = _record(conn, receipts[index], export.window_id, superseded)
    return [outcomes[index] for index in range(len(receipts))]


def _record(
    conn: Connection, receipt: CallbackReceipt, window_id: int, superseded: bool
) -> CallbackOutcome:
    row = lock_window(conn, window_id)
    same_body_pending = conn.scalar(
        select(
            exists().where(
                callbacks.c.window_id == window_id,
                callbacks.c.body_sha256 == receipt.body_sha256,
                callbacks.c.state == "pending",
            )
        )
    )
    outcome: CallbackOutcome
    if row.state in RETIRED or superseded:
        outcome = "superseded"
    elif row.state == WindowState.COMMITTED or same_body_pending:
        outcome = "duplicate"
    else:
        outcome = "accepted"
    conn.execute(
        callbacks.insert().values(
            callback_id=receipt.callback_id,
            export_id=receipt.export_id,
            window_id=window_id,
            received_at=receipt.received_at,
            raw_key=receipt.raw_key,
            body_sha256=receipt.body_sha256,
            size=receipt.size,
            state="pending" if outcome == "accepted" else outcome,
            updated_at=receipt.received_at,
        )
    )
    if outcome == "accepted":
        move(
            conn,
            row,
            Step.RECEIVE,
            receipt.received_at,
            log={"export_id": receipt.export_id, "callback_id": receipt.callback_id},
        )
    return outcome

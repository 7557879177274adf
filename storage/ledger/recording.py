"""Recording a callback: the receiver's side of the ledger, deciding accepted, duplicate or
superseded under the window's row lock, so concurrent callbacks of one window are decided one at
a time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from sqlalchemy import Connection, select

from storage.errors import ErrorKind
from storage.ledger.models import CallbackReceipt, LedgerError
from storage.ledger.moves import Move, move_many
from storage.ledger.planning import lock_windows
from storage.ledger.tables import callbacks, exports
from storage.lifecycle import RETIRED, Step, WindowState

CallbackOutcome = Literal["accepted", "duplicate", "superseded"]


def record_callbacks(
    conn: Connection, receipts: Sequence[CallbackReceipt]
) -> list[CallbackOutcome | LedgerError]:
    """Each receipt's outcome, in order, or the USER LedgerError of one whose export is not in
    the ledger (nothing is written for it).

    A handful of statements for the whole group, however large: its windows are read and
    locked at once, in id order (so two groups recorded at once, by two replicas, never each
    wait for a lock the other holds), moved at once and its callbacks inserted at once.
    """
    found = {
        row.export_id: row
        for row in conn.execute(
            select(exports.c.export_id, exports.c.window_id, exports.c.superseded_at).where(
                exports.c.export_id.in_(sorted({receipt.export_id for receipt in receipts}))
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
    window_of_receipt = {index: found[receipts[index].export_id].window_id for index in known}
    rows = lock_windows(conn, sorted(set(window_of_receipt.values())))
    # A window's state as this group leaves it: a second callback of one window starts from
    # where the first took it.
    states = {window_id: row.state for window_id, row in rows.items()}
    pending = _pending_bodies(conn, sorted(rows), {receipts[i].body_sha256 for i in known})
    moves: list[Move] = []
    inserts = []
    for index in sorted(known, key=window_of_receipt.__getitem__):
        receipt, window_id = receipts[index], window_of_receipt[index]
        state = states[window_id]
        outcome: CallbackOutcome
        if state in RETIRED or found[receipt.export_id].superseded_at is not None:
            outcome = "superseded"
        elif state == WindowState.COMMITTED or (window_id, receipt.body_sha256) in pending:
            outcome = "duplicate"
        else:
            outcome = "accepted"
            pending.add((window_id, receipt.body_sha256))
            log = {"export_id": receipt.export_id, "callback_id": receipt.callback_id}
            moves.append(Move(rows[window_id], state, receipt.received_at, log))
            states[window_id] = WindowState.RECEIVED
        outcomes[index] = outcome
        inserts.append(
            {
                "callback_id": receipt.callback_id,
                "export_id": receipt.export_id,
                "window_id": window_id,
                "received_at": receipt.received_at,
                "raw_key": receipt.raw_key,
                "body_sha256": receipt.body_sha256,
                "size": receipt.size,
                "state": "pending" if outcome == "accepted" else outcome,
                "updated_at": receipt.received_at,
            }
        )
    move_many(conn, Step.RECEIVE, moves)
    if inserts:
        conn.execute(callbacks.insert(), inserts)
    return [outcomes[index] for index in range(len(receipts))]


def _pending_bodies(
    conn: Connection, window_ids: list[int], bodies: set[str]
) -> set[tuple[int, str]]:
    """The (window, body) pairs among these that a pending callback already holds."""
    if not window_ids:
        return set()
    found = conn.execute(
        select(callbacks.c.window_id, callbacks.c.body_sha256).where(
            callbacks.c.window_id.in_(window_ids),
            callbacks.c.body_sha256.in_(sorted(bodies)),
            callbacks.c.state == "pending",
        )
    )
    return {(window_id, body) for window_id, body in found}

"""Executing a lifecycle transition on a window's row: a compare-and-set on its state.

The events of a transaction's transitions are queued on the connection and emitted by the
transaction once it has committed (`connect.Database`), so a rolled-back change logs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam

from storage import lifecycle
from storage.ledger.tables import window_of, windows

_EVENTS = "lifecycle_events"


def move(
    conn: Connection,
    row: Any,
    step: lifecycle.Step,
    now: datetime,
    *,
    log: dict[str, Any] | None = None,
    **recorded: Any,
) -> None:
    """Takes the window in `row` (read in this transaction) through `step`.

    Raises InvalidTransition when the step does not start from the row's state, or when the row
    changed state since it was read.
    """
    values = lifecycle.change(step, row.state, now, **recorded)
    result = conn.execute(
        windows.update().where(windows.c.id == row.id, windows.c.state == row.state).values(values)
    )
    if result.rowcount != 1:
        raise lifecycle.InvalidTransition(
            f"window {window_of(row)} left state {str(row.state)!r} before step {step.value!r}"
        )
    fields: dict[str, Any] = {"from_state": row.state}
    if log:
        fields.update(log)
    queue(conn, lifecycle.Event(step, str(window_of(row)), fields))


class Move(NamedTuple):
    """One window through a step that records nothing of its own, from `source` at `now`."""

    row: Any
    source: str
    now: datetime
    log: dict[str, Any]


def move_many(conn: Connection, step: lifecycle.Step, moves: Sequence[Move]) -> None:
    """`move` for many windows in one statement, in order (a window may appear more than once,
    each move starting from the state the one before left it in).

    Raises InvalidTransition as `move` does, naming how many windows had left their state.
    """
    if not moves:
        return
    changes = [lifecycle.change(step, each.source, each.now) for each in moves]  # each checked
    values = changes[0]  # the same columns for every move; only the time differs, bound per row
    values["updated_at"] = bindparam("move_now")
    statement = (
        windows.update()
        .where(windows.c.id == bindparam("move_id"), windows.c.state == bindparam("move_source"))
        .values(values)
    )
    params = [{"move_id": m.row.id, "move_source": m.source, "move_now": m.now} for m in moves]
    result = conn.execute(statement, params)
    if result.rowcount != len(moves):
        raise lifecycle.InvalidTransition(
            f"{len(moves) - result.rowcount} of {len(moves)} windows left their state "
            f"before step {step.value!r}"
        )
    for each in moves:
        fields = {"from_state": each.source, **each.log}
        queue(conn, lifecycle.Event(step, str(window_of(each.row)), fields))


def queue(conn: Connection, event: lifecycle.Event) -> None:
    conn.info.setdefault(_EVENTS, []).append(event)


def take_events(conn: Connection) -> list[lifecycle.Event]:
    """The queued events, removed from the connection (called at the start and the end of every
    transaction, so a pooled connection never carries them over)."""
    events: list[lifecycle.Event] = conn.info.pop(_EVENTS, [])
    return events

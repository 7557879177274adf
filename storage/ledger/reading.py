"""Read-only queries: what `status`, `verify`, the receiver and the tests look at."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, bindparam, func, select

from storage.layout import Window
from storage.ledger.models import (
    CallbackRecord,
    ExportRecord,
    Summary,
    WindowRecord,
)
from storage.ledger.tables import (
    callback_record,
    callbacks,
    exports,
    window_of,
    window_record,
    windows,
)
from storage.lifecycle import IN_FLIGHT, PROBLEMS, RETIRED, STATES, WindowState

# A window replaced by its halves is history, not something an operator has to act on.
_NOT_RETIRED = windows.c.state.not_in([state.value for state in RETIRED])


# Built once: every callback, known or not, looks its export up, and building the statement
# cost more than running it (SQLite: ~150 -> ~65 us a look-up).
_FIND_EXPORT = (
    select(
        exports.c.export_id,
        exports.c.window_id,
        exports.c.token_sha256,
        exports.c.attempt,
        windows.c.window_start,
        windows.c.window_end,
    )
    .join(windows, windows.c.id == exports.c.window_id)
    .where(exports.c.export_id == bindparam("export_id"))
)


def find_export(conn: Connection, export_id: str) -> ExportRecord | None:
    row = conn.execute(_FIND_EXPORT, {"export_id": export_id}).first()
    if row is None:
        return None
    return ExportRecord(
        export_id=row.export_id,
        window_id=row.window_id,
        window=window_of(row),
        token_sha256=row.token_sha256,
        attempt=row.attempt,
    )


def window(conn: Connection, stream: str, span: Window) -> WindowRecord | None:
    row = conn.execute(
        select(windows).where(
            windows.c.stream == stream,
            windows.c.window_start == span.start,
            windows.c.window_end == span.end,
        )
    ).first()
    return window_record(row) if row is not None else None


def list_windows(
    conn: Connection,
    stream: str,
    *,
    states: Sequence[str] | None,
    since: datetime | None,
    until: datetime | None,
) -> list[WindowRecord]:
    """Windows of `stream` starting in [since, until), oldest first."""
    query = select(windows).where(windows.c.stream == stream)
    if states is not None:
        query = query.where(windows.c.state.in_([str(state) for state in states]))
    if since is not None:
        query = query.where(windows.c.window_start >= since)
    if until is not None:
        query = query.where(windows.c.window_start < until)
    rows = conn.execute(query.order_by(windows.c.window_start, windows.c.window_end)).all()
    return [window_record(row) for row in rows]


def list_callbacks(conn: Connection, export_id: str) -> list[CallbackRecord]:
    """Every stored callback of the export, in arrival order."""
    rows = conn.execute(
        select(callbacks).where(callbacks.c.export_id == export_id).order_by(callbacks.c.seq)
    ).all()
    return [callback_record(row) for row in rows]


def state_counts(conn: Connection, stream: str) -> Summary:
    """Windows by state and the last committed one, in two indexed queries, for /metrics:
    no list of windows, so a scrape costs the same with ten windows or a million."""
    return Summary(
        by_state=_by_state(conn, stream),
        last_committed=_last_committed(conn, stream),
        oldest_uncommitted=None,
        problems=[],
    )


def _by_state(conn: Connection, stream: str) -> dict[str, int]:
    counts = conn.execute(
        select(windows.c.state, func.count())
        .where(windows.c.stream == stream)
        .group_by(windows.c.state)
    ).all()
    by_state: dict[str, int] = dict.fromkeys(STATES, 0)
    by_state.update({state: count for state, count in counts})
    return by_state


def _last_committed(conn: Connection, stream: str) -> WindowRecord | None:
    last = conn.execute(
        select(windows)
        .where(windows.c.stream == stream, windows.c.state == WindowState.COMMITTED.value)
        .order_by(windows.c.window_end.desc(), windows.c.window_start.desc())
        .limit(1)
    ).first()
    return window_record(last) if last is not None else None


def summary(conn: Connection, stream: str) -> Summary:
    of_stream = select(windows).where(windows.c.stream == stream)
    oldest = conn.execute(
        of_stream.where(windows.c.state != WindowState.COMMITTED.value, _NOT_RETIRED)
        .order_by(windows.c.window_start, windows.c.window_end)
        .limit(1)
    ).first()
    problems = conn.execute(
        of_stream.where(windows.c.state.in_([state.value for state in PROBLEMS])).order_by(
            windows.c.window_start, windows.c.window_end
        )
    ).all()
    in_flight = conn.execute(
        of_stream.where(windows.c.state.in_([state.value for state in IN_FLIGHT])).order_by(
            windows.c.window_start, windows.c.window_end
        )
    ).all()
    return Summary(
        in_flight=[window_record(row) for row in in_flight],
        by_state=_by_state(conn, stream),
        last_committed=_last_committed(conn, stream),
        oldest_uncommitted=window_record(oldest) if oldest is not None else None,
        problems=[window_record(row) for row in problems],
    )

"""Windows of another length: planning around them, refusing to overlap them, replacing them.

Windows never overlap, so no message is archived twice because two windows covered it. The
planner cuts what is already in the ledger out of the windows it plans (after a change of
ARCHIVER_WINDOW the first new window starts where the archive ends); `export` refuses a window
that overlaps one of another length, and `export --replace` retires those in one transaction
with adding their replacements.

Every function runs inside one transaction opened by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select

from storage.errors import ErrorKind
from storage.layout import Window
from storage.ledger.models import LedgerError
from storage.ledger.moves import move
from storage.ledger.planning import add_windows
from storage.ledger.tables import window_of, windows
from storage.lifecycle import RETIRED, Step, WindowState
from storage.windows import covered, fit, overlaps


def _live_between(
    conn: Connection, stream: str, low: datetime, high: datetime, lock: bool = False
) -> list[Row[Any]]:
    query = select(windows).where(
        windows.c.stream == stream,
        windows.c.window_start < high,
        windows.c.window_end > low,
        windows.c.state.not_in([state.value for state in RETIRED]),
    )
    if lock:
        query = query.with_for_update()
    return list(conn.execute(query).all())


def fit_to_ledger(conn: Connection, stream: str, spans: Sequence[Window]) -> list[Window]:
    """`spans` with every window the ledger already has (of any length) cut out."""
    if not spans:
        return []
    low, high = min(s.start for s in spans), max(s.end for s in spans)
    occupied = [window_of(row) for row in _live_between(conn, stream, low, high)]
    return fit(spans, occupied)


def conflicts(
    conn: Connection, stream: str, spans: Sequence[Window], lock: bool = False
) -> list[Row[Any]]:
    """Windows in the ledger that overlap `spans` without being one of them."""
    if not spans:
        return []
    wanted = set(spans)
    low, high = min(s.start for s in spans), max(s.end for s in spans)
    return [
        row
        for row in _live_between(conn, stream, low, high, lock)
        if window_of(row) not in wanted and any(overlaps(window_of(row), s) for s in spans)
    ]


def replace(
    conn: Connection, stream: str, spans: Sequence[Window], *, reason: str, now: datetime
) -> int:
    """Retires every window `spans` overlap and adds `spans`; returns how many were retired.

    Refuses while one of them is being processed: its commit would land after the replacement.
    """
    rows = conflicts(conn, stream, spans, lock=True)
    busy = [window_of(row) for row in rows if row.state == WindowState.RECEIVED]
    if busy:
        raise LedgerError(
            f"window {busy[0]} is being processed; run export --replace again once it is "
            "committed (see `chat-archiver status`)",
            kind=ErrorKind.USER,
        )
    for row in rows:
        move(conn, row, Step.REPLACE, now, log={"reason": reason}, reason=reason)
    add_windows(conn, stream, spans, now)
    return len(rows)


def replaced_and_covered(conn: Connection, stream: str, window: Window) -> list[Window]:
    """Replaced windows overlapping `window` whose whole time is now covered by committed
    windows: their earlier commit can be taken out of the archive."""
    replaced = conn.execute(
        select(windows).where(
            windows.c.stream == stream,
            windows.c.state == WindowState.REPLACED.value,
            windows.c.window_start < window.end,
            windows.c.window_end > window.start,
            windows.c.committed_at.is_not(None),
        )
    ).all()
    done = []
    for row in replaced:
        old = window_of(row)
        committed = conn.execute(
            select(windows).where(
                windows.c.stream == stream,
                windows.c.state == WindowState.COMMITTED.value,
                windows.c.window_start < old.end,
                windows.c.window_end > old.start,
            )
        ).all()
        if covered(old, [window_of(other) for other in committed]):
            done.append(old)
    return done

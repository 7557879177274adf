"""The export request stream of a deployment, shared through the ledger: every process that
requests exports (each `serve` replica, `export`, `backfill`) takes its turn from one slot, so
N processes send one paced stream, not N. A refusal for load (429, `Retry-After`) holds the
slot back for all of them.

The slot is one ledger_meta row, read and moved in one write transaction (a row lock on
Postgres, `BEGIN IMMEDIATE` on SQLite).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, select, update

from storage.ledger.planning import insert_ignoring_conflicts
from storage.ledger.tables import meta

SLOT_KEY = "next_export_request_at"


def _slot(conn: Connection, now: datetime) -> datetime:
    conn.execute(
        insert_ignoring_conflicts(conn, meta)
        .values(key=SLOT_KEY, value=now.isoformat())
        .on_conflict_do_nothing(index_elements=["key"])
    )
    stored = conn.scalar(select(meta.c.value).where(meta.c.key == SLOT_KEY).with_for_update())
    return datetime.fromisoformat(stored) if stored else now


def _store(conn: Connection, slot: datetime) -> None:
    conn.execute(update(meta).where(meta.c.key == SLOT_KEY).values(value=slot.isoformat()))


def reserve(
    conn: Connection, now: datetime, pacing: timedelta, max_wait: timedelta
) -> datetime | None:
    """When the caller may send its next request (the later of `now` and the shared slot),
    the slot moving `pacing` past it; None, and nothing reserved, if that is more than
    `max_wait` away."""
    slot = max(_slot(conn, now), now)
    if slot - now > max_wait:
        return None
    if pacing:
        _store(conn, slot + pacing)
    return slot


def give_back(conn: Connection, slot: datetime, pacing: timedelta) -> bool:
    """Returns a reserved turn that was never used (the process stopped while waiting for
    it), so the next process is not held back by a request nobody sent. Only the latest
    reservation can be returned: once another process reserved after it, the stream stays."""
    if not pacing:
        return False
    returned = conn.execute(
        update(meta)
        .where(meta.c.key == SLOT_KEY, meta.c.value == (slot + pacing).isoformat())
        .values(value=slot.isoformat())
    )
    return bool(returned.rowcount)


def hold(conn: Connection, until: datetime) -> None:
    """No process sends a request before `until` (an upstream's Retry-After)."""
    if _slot(conn, until) < until:
        _store(conn, until)

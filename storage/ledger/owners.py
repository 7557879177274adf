"""Who holds a lease, and whether that process is still alive.

A `serve` process (or `replay`) registers the owner name it leases windows under. Then a lease
whose owner has died is free at once instead of after `ARCHIVER_LEASE`:

- On Postgres, a registered owner holds a session-level advisory lock on a connection of its
  own for as long as it lives. When the process dies, Postgres ends the session and frees the
  lock; a lease whose registered owner's lock is free is free. TCP keepalives on that session
  bound how long a vanished host stays "alive".
- On SQLite (one `serve` process, CLI commands beside it, all on one machine), a registered
  owner is alive while its process is: same host, and its pid runs and is not ours under
  another name.

Owners that never registered (tests, older versions) keep the time-based lease only.
"""

from __future__ import annotations

import os
import socket
import threading
from datetime import datetime

from sqlalchemy import Connection, Engine, create_engine, select, text
from sqlalchemy.pool import NullPool

from storage.ledger.connect import advisory_key
from storage.ledger.tables import owners

_HOST = socket.gethostname()
_mine: set[str] = set()
_mine_lock = threading.Lock()


def lock_key(owner: str) -> int:
    return advisory_key(f"owner:{owner}")


class OwnerLock:
    """Holds `owner`'s liveness for as long as it is open (Postgres: a session lock)."""

    def __init__(self, engine: Engine, owner: str, *, postgres: bool) -> None:
        self.owner = owner
        self._conn: Connection | None = None
        self._engine: Engine | None = None
        if postgres:
            # A session of its own, outside the pool: it must outlive every transaction. The
            # server-side keepalives let Postgres notice a vanished host within seconds.
            self._engine = _session_engine(engine)
            session = self._engine.connect()
            for setting in ("idle = 5", "interval = 2", "count = 3"):
                session.execute(text(f"SET tcp_keepalives_{setting}"))
            session.execute(text("SELECT pg_advisory_lock(:key)"), {"key": lock_key(owner)})
            session.commit()
            self._conn = session
        with _mine_lock:
            _mine.add(owner)

    def close(self) -> None:
        with _mine_lock:
            _mine.discard(self.owner)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _session_engine(engine: Engine) -> Engine:
    return create_engine(
        engine.url,
        poolclass=NullPool,
        connect_args={
            "connect_timeout": 10,
            "keepalives": 1,
            "keepalives_idle": 5,
            "keepalives_interval": 2,
            "keepalives_count": 3,
        },
    )


def register(conn: Connection, owner: str, now: datetime) -> None:
    conn.execute(owners.delete().where(owners.c.owner == owner))
    conn.execute(
        owners.insert().values(owner=owner, host=_HOST, pid=str(os.getpid()), started_at=now)
    )


def unregister(conn: Connection, owner: str) -> None:
    conn.execute(owners.delete().where(owners.c.owner == owner))


def dead(conn: Connection, owner: str) -> bool:
    """Whether `owner` registered and its process is gone (False when it never registered)."""
    row = conn.execute(select(owners).where(owners.c.owner == owner)).first()
    if row is None:
        return False
    if conn.dialect.name == "postgresql":
        held = conn.scalar(
            text(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                "AND granted AND objsubid = 1 "
                "AND (classid::text::bigint << 32) + objid::text::bigint = :key)"
            ),
            {"key": lock_key(owner)},
        )
        return not held
    return _process_gone(row.host, int(row.pid), owner)


def _process_gone(host: str, pid: int, owner: str) -> bool:
    if host != _HOST:
        return False  # another machine: only the lease's time can tell
    if pid == os.getpid():
        with _mine_lock:
            return owner not in _mine  # our pid, an earlier process's name: it died
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False

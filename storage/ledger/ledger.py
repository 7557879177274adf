"""The ledger: the state of every window, export and callback, on SQLite or PostgreSQL.

Every method is synchronous, thread-safe and runs in its own short transaction, so callers on
worker threads (via `run_in_threadpool`), other replicas and CLI commands can share one ledger.
Every `reason` is redacted before it is stored: an upstream error that echoes the API key or a
callback URL must not put them in the database, `status` or `check`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from storage.layout import Window
from storage.ledger import claims, history, owners, planning, reading, recording, replacing
from storage.ledger import pacing as request_stream
from storage.ledger.connect import Database, first_line
from storage.ledger.models import (
    CallbackReceipt,
    CallbackRecord,
    ExportAttempt,
    ExportRecord,
    LedgerError,
    ProcessingClaim,
    Summary,
    WindowRecord,
)
from storage.ledger.owners import OwnerLock
from storage.ledger.planning import insert_ignoring_conflicts
from storage.ledger.tables import meta, window_record
from storage.redaction import redact

log = logging.getLogger("chat_archiver.ledger")


class Ledger:
    def __init__(self, database: Database) -> None:
        self._db = database
        self._owner_locks: dict[str, OwnerLock] = {}

    @classmethod
    def open(cls, url: str) -> Ledger:
        """Connects and creates or upgrades the schema; LedgerError saying why if it cannot."""
        database = Database(url)
        try:
            database.migrate()
        except LedgerError as exc:
            database.close()
            if isinstance(exc.__cause__, DBAPIError):
                cause = exc.__cause__
                raise LedgerError(
                    f"cannot open the ledger at {database.safe_url}: {first_line(cause)}"
                ) from cause
            raise
        return cls(database)

    def close(self) -> None:
        for owner in list(self._owner_locks):
            try:
                self.release_owner(owner)
            except LedgerError as error:
                # Closing anyway: its lock ends with its session, and its row is only a name.
                log.warning("owner_release_failed", extra={"owner": owner, "reason": str(error)})
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """The ledger's URL with any password hidden, for messages."""
        return self._db.safe_url

    @property
    def is_postgres(self) -> bool:
        """Postgres (networked, many writers) rather than SQLite (a local file, one writer)."""
        return self._db.is_postgres

    def ping(self) -> None:
        with self._db.read() as conn:
            conn.execute(text("SELECT 1"))

    def created_at(self) -> datetime:
        value = self.get_meta("created_at")
        if value is None:
            raise LedgerError(f"ledger {self.url} has no creation time; was it created by hand?")
        return datetime.fromisoformat(value).astimezone(UTC)

    def get_meta(self, key: str) -> str | None:
        with self._db.read() as conn:
            return conn.scalar(select(meta.c.value).where(meta.c.key == key))

    def set_meta(self, key: str, value: str | None) -> None:
        with self._db.write() as conn:
            if value is None:
                conn.execute(meta.delete().where(meta.c.key == key))
                return
            statement = insert_ignoring_conflicts(conn, meta).values(key=key, value=value)
            conn.execute(
                statement.on_conflict_do_update(index_elements=["key"], set_={"value": value})
            )

    # The export request stream every process of the deployment shares.

    def reserve_request_slot(
        self, now: datetime, pacing: timedelta, max_wait: timedelta
    ) -> datetime | None:
        """When this process may send its next export request; None if not within
        `max_wait` (then nothing is reserved)."""
        with self._db.write() as conn:
            return request_stream.reserve(conn, now, pacing, max_wait)

    def give_back_request_slot(self, slot: datetime, pacing: timedelta) -> bool:
        """Returns a reserved turn that was never used, if no one reserved after it."""
        with self._db.write() as conn:
            return request_stream.give_back(conn, slot, pacing)

    def hold_requests(self, until: datetime) -> None:
        """No process of the deployment sends an export request before `until`."""
        with self._db.write() as conn:
            request_stream.hold(conn, until)

    # Planning and requesting (the scheduler).

    def plan(self, stream: str, windows: Sequence[Window]) -> int:
        """Adds the windows not yet known as `planned`; returns how many were new."""
        with self._db.write() as conn:
            return planning.plan(conn, stream, windows, _now())

    def conflicts(self, stream: str, windows: Sequence[Window]) -> list[WindowRecord]:
        """Windows in the ledger of another length that overlap `windows`."""
        with self._db.read() as conn:
            return [window_record(row) for row in replacing.conflicts(conn, stream, windows)]

    def replace(self, stream: str, windows: Sequence[Window], *, reason: str, now: datetime) -> int:
        """Retires the windows of another length that `windows` overlap and adds `windows`,
        in one transaction; returns how many were retired."""
        with self._db.write() as conn:
            return replacing.replace(conn, stream, windows, reason=reason, now=now)

    def replaced_and_covered(self, stream: str, window: Window) -> list[Window]:
        with self._db.read() as conn:
            return replacing.replaced_and_covered(conn, stream, window)

    def force_due(
        self,
        stream: str,
        windows: Sequence[Window],
        *,
        include_committed: bool,
        rerequest: bool = False,
        now: datetime,
    ) -> int:
        """Makes the windows due now, except those being processed.

        Committed windows are left alone unless `include_committed` (a forced re-export, which
        supersedes their earlier exports); windows waiting for a callback unless `rerequest`.
        Returns how many were made due.
        """
        with self._db.write() as conn:
            return planning.force_due(
                conn,
                stream,
                windows,
                include_committed=include_committed,
                rerequest=rerequest,
                now=now,
            )

    def claim_due(
        self,
        stream: str,
        now: datetime,
        *,
        limit: int,
        callback_timeout: timedelta,
        max_attempts: int,
    ) -> list[ExportAttempt]:
        """Claims up to `limit` due windows, oldest first, each with a new export id and token.

        Windows whose callback timed out are due again; with no attempts left they become
        `failed` instead.
        """
        with self._db.write() as conn:
            return planning.claim_due(
                conn,
                stream,
                now,
                limit=limit,
                callback_timeout=callback_timeout,
                max_attempts=max_attempts,
            )

    def request_failed(self, export_id: str, *, reason: str, retry_at: datetime | None) -> None:
        """The upstream refused the request: the attempt is undone, due again at `retry_at`.

        `retry_at` None means the refusal is permanent and the window becomes `failed`.
        """
        with self._db.write() as conn:
            planning.request_failed(
                conn, export_id, reason=redact(reason), retry_at=retry_at, now=_now()
            )

    def replace_with_halves(
        self, window_id: int, halves: tuple[Window, Window], *, reason: str
    ) -> None:
        """The upstream refused the window's span: it is `split`, replaced by its two halves."""
        with self._db.write() as conn:
            planning.replace_with_halves(conn, window_id, halves, _now(), reason)

    # Intake (the receiver).

    def find_export(self, export_id: str) -> ExportRecord | None:
        with self._db.read() as conn:
            return reading.find_export(conn, export_id)

    def record_callback(
        self,
        *,
        export_id: str,
        callback_id: str,
        received_at: datetime,
        raw_key: str,
        body_sha256: str,
        size: int,
    ) -> recording.CallbackOutcome:
        """Stores the callback; `duplicate` if its window is committed or holds the same body,
        `superseded` if its export was replaced (the window split, or re-exported by force)."""
        receipt = CallbackReceipt(export_id, callback_id, received_at, raw_key, body_sha256, size)
        outcome = self.record_callbacks([receipt])[0]
        if isinstance(outcome, LedgerError):
            raise outcome
        return outcome

    def record_callbacks(
        self, receipts: Sequence[CallbackReceipt]
    ) -> list[recording.CallbackOutcome | LedgerError]:
        """`record_callback` for each receipt, in one transaction (one commit for them all);
        a receipt of an unknown export gets its LedgerError in its place, the others go on."""
        with self._db.write() as conn:
            return recording.record_callbacks(conn, receipts)

    # Processing (the worker).

    def register_owner(self, owner: str) -> None:
        """Makes `owner`'s death visible to other processes at once (see ledger/owners.py):
        a lease it holds is free as soon as its process is gone. Until `release_owner`."""
        lock = OwnerLock(self._db.engine, owner, postgres=self._db.is_postgres)
        try:
            with self._db.write() as conn:
                owners.register(conn, owner, _now())
        except BaseException:
            lock.close()
            raise
        self._owner_locks[owner] = lock

    def release_owner(self, owner: str) -> None:
        lock = self._owner_locks.pop(owner, None)
        if lock is None:
            return
        try:
            with self._db.write() as conn:
                owners.unregister(conn, owner)
        finally:
            lock.close()

    def claim_received(self, owner: str, now: datetime, lease: timedelta) -> ProcessingClaim | None:
        """Leases the oldest received window whose lease is free (run out, or its owner's
        process is gone), with the callback to process: of the eligible exports, the one that
        delivered first."""
        with self._db.write() as conn:
            return claims.claim_received(conn, owner, now, lease)

    def leased_elsewhere(self, owner: str, now: datetime) -> list[tuple[Window, str, datetime]]:
        """Received windows that wait for the live lease of another owner."""
        with self._db.read() as conn:
            return claims.leased_elsewhere(conn, owner, now)

    def check_fence(self, claim: ProcessingClaim, now: datetime) -> None:
        """Raises Fenced unless `claim` still holds a live lease and its export is eligible."""
        with self._db.read() as conn:
            claims.check_fence(conn, claim, now)

    def renew_lease(self, window_id: int, owner: str, until: datetime) -> bool:
        """Extends the lease; False if `owner` no longer holds it (stop working on the window)."""
        with self._db.write() as conn:
            return claims.renew_lease(conn, window_id, owner, until)

    def release(self, window_id: int, owner: str) -> None:
        with self._db.write() as conn:
            claims.release(conn, window_id, owner)

    def commit(
        self,
        claim: ProcessingClaim,
        *,
        rows: int,
        rejects: int,
        manifest_key: str,
        now: datetime,
    ) -> None:
        with self._db.write() as conn:
            claims.commit(
                conn, claim, rows=rows, rejects=rejects, manifest_key=manifest_key, now=now
            )

    def quarantine(self, claim: ProcessingClaim, *, reason: str, now: datetime) -> None:
        with self._db.write() as conn:
            claims.quarantine(conn, claim, reason=redact(reason), now=now)

    def attempt_failed(
        self,
        claim: ProcessingClaim,
        *,
        reason: str,
        now: datetime,
        max_attempts: int,
        retry_at: datetime,
    ) -> None:
        with self._db.write() as conn:
            claims.attempt_failed(
                conn,
                claim,
                reason=redact(reason),
                now=now,
                max_attempts=max_attempts,
                retry_at=retry_at,
            )

    def requeue(
        self,
        *,
        export_id: str | None = None,
        quarantined: bool = False,
        accept_shrink: bool = False,
    ) -> int:
        """Makes stored callbacks pending again for `replay`; returns how many windows.

        `accept_shrink` lets the export commit although it has far fewer rows than the window
        committed before (the shrink guard)."""
        with self._db.write() as conn:
            return claims.requeue(
                conn,
                export_id=export_id,
                quarantined=quarantined,
                now=_now(),
                accept_shrink=accept_shrink,
            )

    # Reading.

    def window(self, stream: str, window: Window) -> WindowRecord | None:
        with self._db.read() as conn:
            return reading.window(conn, stream, window)

    def windows(
        self,
        stream: str,
        *,
        states: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[WindowRecord]:
        """Windows starting in [since, until), oldest first."""
        with self._db.read() as conn:
            return reading.list_windows(conn, stream, states=states, since=since, until=until)

    def callbacks(self, export_id: str) -> list[CallbackRecord]:
        with self._db.read() as conn:
            return reading.list_callbacks(conn, export_id)

    def summary(self, stream: str) -> Summary:
        with self._db.read() as conn:
            return reading.summary(conn, stream)

    def state_counts(self, stream: str) -> Summary:
        """Only `by_state` and `last_committed`, cheaply: what the gauges need."""
        with self._db.read() as conn:
            return reading.state_counts(conn, stream)

    # A window's history, for the status page.

    def attempts(self, window_id: int) -> list[history.AttemptRecord]:
        with self._db.read() as conn:
            return history.attempts(conn, window_id)

    def window_callbacks(self, window_id: int) -> list[CallbackRecord]:
        with self._db.read() as conn:
            return history.window_callbacks(conn, window_id)

    def raw_bytes(self) -> int:
        with self._db.read() as conn:
            return history.raw_bytes(conn)


def _now() -> datetime:
    return datetime.now(UTC)

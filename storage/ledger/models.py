"""What the ledger hands out: plain frozen records, no database types."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from storage.errors import TransientError
from storage.layout import Window
from storage.lifecycle import WindowState

# pending: waiting for the worker; duplicate: stored but changes nothing; processed: its data
# is committed; superseded: a later forced re-export (or the window's split) replaced its export,
# or another callback of the window was committed instead.
CallbackState = Literal["pending", "duplicate", "processed", "superseded", "quarantined", "failed"]


class LedgerError(TransientError):
    """The ledger cannot be reached (transient), or was asked about something it does not hold
    or given a URL it cannot use (raised with `kind=ErrorKind.USER`)."""


@dataclass(frozen=True)
class ExportAttempt:
    """One request of a window: what the scheduler sends upstream (the token only here)."""

    window_id: int
    window: Window
    export_id: str
    token: str
    attempt: int


@dataclass(frozen=True)
class ExportRecord:
    """What the receiver needs to authenticate a callback."""

    export_id: str
    window_id: int
    window: Window
    token_sha256: str
    attempt: int


@dataclass(frozen=True)
class CallbackReceipt:
    """A callback whose raw body is stored, to be recorded against its export."""

    export_id: str
    callback_id: str
    received_at: datetime
    raw_key: str
    body_sha256: str
    size: int


class Fenced(TransientError):
    """The worker no longer holds the window's lease, or the export it processes is no longer
    eligible (superseded by a forced re-export, or another callback was committed): it must
    stop processing the window and write nothing more."""


@dataclass(frozen=True)
class ProcessingClaim:
    """A received window leased to one worker, with the callback it is to process."""

    window_id: int
    window: Window
    export_id: str
    callback_id: str
    raw_key: str
    attempt: int
    owner: str = ""
    # A forced re-export of a window committed before with `committed_rows` rows.
    forced: bool = False
    committed_rows: int | None = None
    shrink_accepted: bool = False


@dataclass(frozen=True)
class WindowRecord:
    id: int
    stream: str
    window: Window
    state: WindowState
    attempts: int
    export_id: str | None
    reason: str | None
    rows: int | None
    rejects: int | None
    requested_at: datetime | None
    deadline_at: datetime | None
    committed_at: datetime | None
    updated_at: datetime
    next_request_at: datetime | None = None
    manifest_key: str | None = None


@dataclass(frozen=True)
class CallbackRecord:
    callback_id: str
    export_id: str
    received_at: datetime
    raw_key: str
    body_sha256: str
    size: int
    state: CallbackState
    reason: str | None


@dataclass(frozen=True)
class Summary:
    by_state: dict[str, int]
    last_committed: WindowRecord | None
    oldest_uncommitted: WindowRecord | None
    problems: list[WindowRecord]
    # Waiting for a callback or being processed, oldest first.
    in_flight: list[WindowRecord] = field(default_factory=list)

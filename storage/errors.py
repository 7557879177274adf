"""The project's one exception root, with the three kinds a caller branches on.

Every error chat-archiver raises on purpose derives from `ArchiverError` and carries a `kind`:

- `USER`: the caller's mistake (a bad argument, setting or request); the CLI prints one line and
  exits 2, the receiver answers 4xx.
- `TRANSIENT`: a dependency failed (the ledger, the object store, the network, the upstream);
  doing the same thing again later, with back-off, may succeed.
- `PERMANENT`: doing the same thing again will fail the same way for this window (a payload no
  decoder understands, a refused download link); the window is quarantined with the reason.

Callers decide by `error.kind`, never by the exception's message, and never by the order of
`except` clauses. It lives in `storage`, which imports nothing of ours, so every package may
import it.
"""

from __future__ import annotations

import enum


class ErrorKind(enum.Enum):
    USER = "user"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


class ArchiverError(Exception):
    """The root of every error chat-archiver raises on purpose; `kind` says what to do about it.

    A subclass sets the class attribute `kind`; one raise site may override it with `kind=`.
    """

    kind: ErrorKind = ErrorKind.TRANSIENT

    def __init__(self, *args: object, kind: ErrorKind | None = None) -> None:
        super().__init__(*args)
        if kind is not None:
            self.kind = kind


class UserError(ArchiverError):
    """The caller asked for something wrong; the message says what, in one line."""

    kind = ErrorKind.USER


class TransientError(ArchiverError):
    """A dependency failed; trying again later may succeed."""

    kind = ErrorKind.TRANSIENT


class PermanentError(ArchiverError):
    """Trying this window again the same way will fail the same way."""

    kind = ErrorKind.PERMANENT


def kind_of(error: BaseException) -> ErrorKind:
    """The kind of any exception: ours say it; an OS, network or time-out error is an outage
    (transient); anything else (a value that breaks a library, a bug) fails the same way each
    time it meets the same input (permanent for that input)."""
    if isinstance(error, ArchiverError):
        return error.kind
    if isinstance(error, OSError | TimeoutError | MemoryError):
        return ErrorKind.TRANSIENT
    return ErrorKind.PERMANENT


def one_line(error: BaseException) -> str:
    """The error's message in one line, for a user or a log."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]

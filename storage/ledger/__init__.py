"""The ledger of windows, exports and callbacks, on SQLite or PostgreSQL."""

from storage.ledger.ledger import Ledger
from storage.ledger.models import (
    CallbackReceipt,
    CallbackRecord,
    CallbackState,
    ExportAttempt,
    ExportRecord,
    Fenced,
    LedgerError,
    ProcessingClaim,
    Summary,
    WindowRecord,
)
from storage.lifecycle import WindowState

__all__ = [
    "CallbackReceipt",
    "CallbackRecord",
    "CallbackState",
    "ExportAttempt",
    "ExportRecord",
    "Fenced",
    "Ledger",
    "LedgerError",
    "ProcessingClaim",
    "Summary",
    "WindowRecord",
    "WindowState",
]

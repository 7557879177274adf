"""The ledger of windows, exports and callbacks (DESIGN §5), on SQLite or PostgreSQL."""

from storage.ledger.ledger import Ledger
from storage.ledger.models import (
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

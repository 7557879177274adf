"""The ledger of windows, exports and callbacks (DESIGN §5), on SQLite or PostgreSQL."""

from storage.ledger.ledger import Ledger
from storage.ledger.models import (
    SPLIT_REASON,
    WINDOW_STATES,
    CallbackRecord,
    CallbackState,
    ExportAttempt,
    ExportRecord,
    LedgerError,
    ProcessingClaim,
    Summary,
    WindowRecord,
    WindowState,
)

__all__ = [
    "SPLIT_REASON",
    "WINDOW_STATES",
    "CallbackRecord",
    "CallbackState",
    "ExportAttempt",
    "ExportRecord",
    "Ledger",
    "LedgerError",
    "ProcessingClaim",
    "Summary",
    "WindowRecord",
    "WindowState",
]

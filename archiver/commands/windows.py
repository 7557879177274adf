"""`chat-archiver windows [--state S] [--since T] [--json]`: the windows the ledger holds."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from archiver.ledger_access import open_existing
from archiver.settings import Settings
from archiver.status_report import window_json, windows_table
from storage.lifecycle import WindowState
from storage.redaction import redact
from storage.schema import STREAM


def list_windows(
    settings: Settings,
    *,
    states: Sequence[WindowState] | None,
    since: datetime | None,
    as_json: bool,
) -> int:
    ledger = open_existing(settings.ledger_url)
    try:
        records = ledger.windows(STREAM, states=states, since=since)
    finally:
        ledger.close()
    entries = [window_json(record) for record in records]
    if as_json:
        print(redact(json.dumps(entries, indent=2)))
    elif entries:
        print(redact(windows_table(entries)))
        print(f"{len(entries)} window(s)")
    else:
        print("no windows")
    return 0

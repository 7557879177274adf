"""`chat-archiver status [--json]`."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from archiver.ledger_access import open_existing
from archiver.settings import Settings
from archiver.status_report import status_document, status_text
from scheduler.requester import KEY_REJECTED, key_fingerprint
from storage.schema import STREAM


def status(settings: Settings, *, as_json: bool) -> int:
    ledger = open_existing(settings.ledger_url)
    try:
        summary = ledger.summary(STREAM)
        rejected = ledger.get_meta(KEY_REJECTED)
    finally:
        ledger.close()
    key_rejected = rejected is not None and (
        settings.api_key is None or rejected == key_fingerprint(settings.api_key)
    )
    document = status_document(summary, datetime.now(UTC), api_key_rejected=key_rejected)
    print(json.dumps(document, indent=2) if as_json else status_text(document))
    return 0

"""`chat-archiver status [--json]`."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

from archiver.ledger_access import open_existing
from archiver.settings import Settings
from archiver.status_report import status_document, status_text
from scheduler.requester import KEY_REJECTED, key_fingerprint
from storage.raw_retention import raw_usage
from storage.redaction import redact
from storage.schema import STREAM
from storage.stores import open_store


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
    document["raw_store"] = _raw_store(settings)
    print(redact(json.dumps(document, indent=2) if as_json else status_text(document)))
    return 0


RAW_LISTING_TIMEOUT = 30.0


def _raw_store(settings: Settings) -> dict[str, Any]:
    """What `_raw/` holds, from one listing bounded in time: a slow or unreachable store makes
    this entry say so instead of holding up the ledger's part of the report."""
    result: dict[str, Any] = {"objects": None, "bytes": None, "error": "listing timed out"}

    def measure() -> None:
        try:
            usage = raw_usage(open_store(settings.storage_url, settings.s3))
        except Exception as error:  # noqa: BLE001 - reported in the output instead
            result["error"] = f"{type(error).__name__}: {error}"
            return
        result.update(objects=usage.objects, bytes=usage.bytes, error=None)

    worker = threading.Thread(target=measure, daemon=True)
    worker.start()
    worker.join(RAW_LISTING_TIMEOUT)
    retention = settings.raw_retention
    return dict(result, retention_seconds=retention.total_seconds() if retention else None)

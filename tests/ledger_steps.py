"""Ledger steps the worker and the requester take, for tests that need a window in a state."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from storage.layout import Window
from storage.ledger import Ledger
from storage.schema import STREAM


def commit_in_ledger(ledger: Ledger, window: Window, rows: int, commit: bool = True) -> str:
    """The ledger's side of a committed window, as the worker leaves it (with `commit`
    False: received, its callback stored, waiting for the worker)."""
    ledger.plan(STREAM, [window])
    now = datetime.now(UTC)
    [attempt] = [
        a
        for a in ledger.claim_due(
            STREAM, now, limit=10, callback_timeout=timedelta(hours=1), max_attempts=5
        )
        if a.window == window
    ]
    ledger.record_callback(
        export_id=attempt.export_id,
        callback_id=uuid.uuid4().hex,
        received_at=now,
        raw_key=f"_raw/{attempt.export_id}/x.body",
        body_sha256="0" * 64,
        size=1,
    )
    if not commit:
        return attempt.export_id
    claim = ledger.claim_received("test", now, timedelta(minutes=1))
    assert claim is not None and claim.window == window
    ledger.commit(claim, rows=rows, rejects=0, manifest_key="m", now=now)
    return attempt.export_id

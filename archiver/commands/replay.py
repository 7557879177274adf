"""`chat-archiver replay`: decode stored raw callbacks again, in this process."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from archiver.ledger_access import open_existing
from archiver.logs import configure_logging
from archiver.service import processing_config, replica_name
from archiver.settings import Settings
from receiver.processing import process_claim
from storage.objectstore import open_store


def replay(
    settings: Settings, *, export_id: str | None, quarantined: bool, accept_shrink: bool = False
) -> int:
    """Requeues the callbacks, then processes what is queued exactly as the worker would.

    A running `serve` may pick some of them up first; leases keep each window to one processor.
    """
    configure_logging("WARNING", settings.secrets)
    ledger = open_existing(settings.ledger_url)
    try:
        store = open_store(settings.storage_url, settings.s3)
        count = ledger.requeue(
            export_id=export_id, quarantined=quarantined, accept_shrink=accept_shrink
        )
        if count == 0:
            print("nothing to replay")
            return 0
        config = processing_config(settings)
        owner = replica_name()
        ledger.register_owner(owner)
        outcomes: dict[str, int] = {}
        while claim := ledger.claim_received(owner, datetime.now(UTC), settings.lease):
            outcome = process_claim(claim, store, ledger, config)
            outcomes[outcome.kind] = outcomes.get(outcome.kind, 0) + 1
            print(f"{claim.window}  {outcome.kind}  {outcome.detail}")
    finally:
        ledger.close()
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(outcomes.items())) or "none processed"
    print(f"replayed {count} window(s): {summary}")
    if outcomes.get("quarantined"):
        print("some windows are still quarantined; see `chat-archiver status`", file=sys.stderr)
        return 1
    return 0

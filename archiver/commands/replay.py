"""`chat-archiver replay`: decode stored raw callbacks again, in this process."""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from archiver.allocator import fix_mmap_threshold
from archiver.ledger_access import open_existing
from archiver.logs import configure_logging
from archiver.service import processing_config, replica_name
from archiver.settings import Settings
from receiver.export_file import SourceMissing, ensure_source
from receiver.processing import ProcessingConfig, process_claim
from receiver.spool import SpoolFull
from storage.ledger import Ledger
from storage.objectstore import ObjectStore
from storage.redaction import redact
from storage.schema import STREAM
from storage.stores import open_store


def replay(
    settings: Settings, *, export_id: str | None, quarantined: bool, accept_shrink: bool = False
) -> int:
    """Requeues the callbacks whose source is in `_raw/`, then processes what is queued exactly
    as the worker would. A window whose source is missing is left as it is (a committed window
    stays committed) and named on stderr, and the exit code is 1.

    A running `serve` may pick some of them up first; leases keep each window to one processor.
    """
    configure_logging("WARNING", settings.secrets)
    fix_mmap_threshold()
    ledger = open_existing(settings.ledger_url)
    missing = 0
    try:
        store = open_store(settings.storage_url, settings.s3)
        config = processing_config(settings, store)
        targets = [export_id] if export_id else _quarantined_exports(ledger)
        count = 0
        for target in targets:
            problem = _missing_source(ledger, store, config, target)
            if problem is not None:
                missing += 1
                print(redact(f"replay of {target}: {problem}; left as it is"), file=sys.stderr)
                continue
            count += ledger.requeue(export_id=target, accept_shrink=accept_shrink)
        if count == 0 and not missing:
            print("nothing to replay")
            return 0
        owner = replica_name()
        ledger.register_owner(owner)
        outcomes: dict[str, int] = {}
        while claim := ledger.claim_received(owner, datetime.now(UTC), settings.lease):
            outcome = process_claim(claim, store, ledger, config)
            outcomes[outcome.kind] = outcomes.get(outcome.kind, 0) + 1
            print(redact(f"{claim.window}  {outcome.kind}  {outcome.detail}"))
    finally:
        ledger.close()
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(outcomes.items())) or "none processed"
    print(f"replayed {count} window(s): {summary}")
    if outcomes.get("quarantined"):
        print("some windows are still quarantined; see `chat-archiver status`", file=sys.stderr)
        return 1
    return 1 if missing else 0


def _quarantined_exports(ledger: Ledger) -> list[str]:
    records = ledger.windows(STREAM, states=["quarantined"])
    return [record.export_id for record in records if record.export_id]


def _missing_source(
    ledger: Ledger, store: ObjectStore, config: ProcessingConfig, export_id: str
) -> str | None:
    """Why the export's newest callback cannot be rebuilt from `_raw/`, or None if it can.
    An unknown export id is left for `requeue` to refuse."""
    callbacks = ledger.callbacks(export_id)
    if not callbacks:
        return None
    with tempfile.TemporaryDirectory(dir=config.tmp_dir, prefix="replay-") as work:
        try:
            ensure_source(store, callbacks[-1].raw_key, config.download, Path(work))
        except (SourceMissing, SpoolFull) as error:
            return str(error)
    return None

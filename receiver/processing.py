"""Processing one claimed window: raw body → decoder → Parquet → manifest → committed.

Runs in a worker thread. Every outcome is written to the ledger before returning, so a crash
at any point leaves the window `received` and it is processed again after a restart; object
names are deterministic, so that is safe.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from receiver.decoding import (
    DecodeError,
    FailureNotice,
    InlineFile,
    LinkNotice,
    classify,
    read_batches,
)
from receiver.decoding.download import DownloadError, DownloadPolicy
from receiver.export_file import fetch_export_file
from receiver.fencing import ShrinkRefused, WindowFence
from receiver.metrics import DOWNLOAD_BYTES, ROWS_REJECTED, ROWS_WRITTEN, WINDOWS_PROCESSED
from receiver.spool import disk_full_is_spool_full
from storage.commit import WriteOptions
from storage.errors import ErrorKind
from storage.layout import raw_meta_key
from storage.ledger import Fenced, Ledger, ProcessingClaim
from storage.objectstore import ObjectStore
from storage.schema import STREAM
from storage.target import CommitTarget, PlainTarget

log = logging.getLogger("chat_archiver.receiver.processing")

# fenced: the worker lost the window (its lease, or its export's eligibility) and gave up.
OutcomeKind = Literal["committed", "quarantined", "retry", "fenced"]


@dataclass(frozen=True)
class ProcessingConfig:
    download: DownloadPolicy
    write: WriteOptions
    max_attempts: int
    retry_delay: timedelta = timedelta(minutes=1)
    tmp_dir: Path | None = None
    target: CommitTarget | None = None
    """Where windows are committed; the plain layout on the worker's store when None."""
    # A forced re-export with more than this fraction fewer rows than the committed window
    # is quarantined instead of committed.
    shrink_guard: float = 0.5


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    detail: str
    rows: int = 0
    rejects: int = 0


@dataclass(frozen=True)
class RawCallback:
    headers: dict[str, str]
    received_at: datetime


def _raw_callback(store: ObjectStore, raw_key: str) -> RawCallback:
    meta = json.loads(store.get_bytes(raw_meta_key(raw_key)))
    headers = meta.get("headers", {})
    return RawCallback(
        headers={str(name): str(value) for name, value in headers.items()},
        received_at=datetime.fromisoformat(meta["received_at"]),
    )


def process_claim(
    claim: ProcessingClaim,
    store: ObjectStore,
    ledger: Ledger,
    config: ProcessingConfig,
    lost: threading.Event | None = None,
) -> Outcome:
    """Takes a claimed window to committed, quarantined or due again; records it in the ledger.

    `lost` is set by the heartbeat when the lease is gone: processing stops at the next batch
    or object write, writes nothing more, and the outcome is `fenced`.
    """
    fence = WindowFence(ledger, claim, shrink_guard=config.shrink_guard, lost=lost)
    try:
        outcome = _process(claim, store, ledger, config, fence)
    except Fenced as error:
        outcome = Outcome("fenced", str(error))
        log.warning(
            "window_given_up",
            extra={
                "window": str(claim.window),
                "export_id": claim.export_id,
                "owner": claim.owner,
                "reason": str(error),
            },
        )
    WINDOWS_PROCESSED.labels(outcome.kind).inc()
    return outcome


def _process(
    claim: ProcessingClaim,
    store: ObjectStore,
    ledger: Ledger,
    config: ProcessingConfig,
    fence: WindowFence,
) -> Outcome:
    with tempfile.TemporaryDirectory(dir=config.tmp_dir, prefix="window-") as work_dir:
        work = Path(work_dir)
        with disk_full_is_spool_full(work, "processing the window"):
            outcome = _decode_and_write(claim, store, config, work, fence)
    # The ledger's lifecycle logs each transition (window_committed, window_quarantined, ...).
    now = datetime.now(UTC)
    if outcome.kind == "committed":
        ledger.commit(
            claim, rows=outcome.rows, rejects=outcome.rejects, manifest_key=outcome.detail, now=now
        )
        target = config.target or PlainTarget(store)
        for replaced in ledger.replaced_and_covered(STREAM, claim.window):
            target.retire(replaced)
        ROWS_WRITTEN.inc(outcome.rows)
        ROWS_REJECTED.inc(outcome.rejects)
    elif outcome.kind == "quarantined":
        ledger.quarantine(claim, reason=outcome.detail, now=now)
    elif outcome.kind == "retry":
        ledger.attempt_failed(
            claim,
            reason=outcome.detail,
            now=now,
            max_attempts=config.max_attempts,
            retry_at=now + config.retry_delay,
        )
    return outcome


def _decode_and_write(
    claim: ProcessingClaim,
    store: ObjectStore,
    config: ProcessingConfig,
    work: Path,
    fence: WindowFence,
) -> Outcome:
    body = work / "body"
    store.download_file(claim.raw_key, body)
    raw = _raw_callback(store, claim.raw_key)
    try:
        payload = classify(raw.headers, body)
    except DecodeError as error:
        return Outcome("quarantined", f"unrecognised callback: {error}")

    if isinstance(payload, FailureNotice):
        return Outcome("retry", f"the upstream reported a failed export: {payload.reason}")
    if isinstance(payload, LinkNotice):
        try:
            fetched = fetch_export_file(
                store, claim.raw_key, payload.url, work / "download", config.download
            )
        except DownloadError as error:
            if error.kind is ErrorKind.PERMANENT:
                return Outcome("quarantined", f"download link refused: {error}")
            return Outcome("retry", f"download failed: {error}")
        if fetched.downloaded:
            DOWNLOAD_BYTES.inc(fetched.size)
        data = fetched.path
    else:
        assert isinstance(payload, InlineFile)
        data = payload.path

    decode_dir = work / "decode"
    decode_dir.mkdir()
    options = config.write
    if options.tmp_dir is None:
        options = WriteOptions(options.part_bytes, options.row_group_bytes, work)
    target = config.target or PlainTarget(store)
    try:
        result = target.commit_window(
            claim.window,
            claim.export_id,
            fence.batches(read_batches(data, tmp_dir=decode_dir)),
            # The callback's arrival, not the clock: processing it again writes identical bytes.
            ingested_at=raw.received_at,
            options=options,
            fence=fence,
        )
    except DecodeError as error:
        return Outcome("quarantined", f"undecodable export file: {error}")
    except ShrinkRefused as error:
        return Outcome("quarantined", str(error))
    return Outcome("committed", result.manifest_key, rows=result.rows, rejects=result.rejects)

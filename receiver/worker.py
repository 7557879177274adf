"""The processing worker: claims received windows from the ledger and processes them.

It runs in the service's event loop and does the heavy work in a thread. Work is found through
the ledger, not through memory, so whatever was received and not committed before a restart
(or by a replica that died) is picked up again once its lease has run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from datetime import UTC, datetime, timedelta

from receiver.metrics import PROCESSING_SECONDS, WINDOWS_PROCESSED
from receiver.processing import ProcessingConfig, process_claim
from receiver.spool import SpoolFull
from storage.ledger import Ledger, ProcessingClaim
from storage.objectstore import ObjectStore

log = logging.getLogger("chat_archiver.receiver.worker")

# The longest a window that keeps failing unexpectedly waits between two tries.
MAX_BACKOFF_SECONDS = 300.0


class ProcessingWorker:
    def __init__(
        self,
        ledger: Ledger,
        store: ObjectStore,
        config: ProcessingConfig,
        *,
        owner: str,
        lease: timedelta,
        poll_interval: float = 5.0,
    ) -> None:
        self._ledger = ledger
        self._store = store
        self._config = config
        self._owner = owner
        self._lease = lease
        self._poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._failures: dict[int, int] = {}
        self._busy = False

    @property
    def busy(self) -> bool:
        """True while a window is being processed."""
        return self._busy

    def wake(self) -> None:
        """Called by intake after an accepted callback, so processing starts without polling."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="processing-worker")

    async def stop(self, timeout: float = 30.0) -> None:
        """Stops claiming; waits up to `timeout` for the window in hand, else leaves its lease."""
        self._stopping = True
        self._wake.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            log.warning("worker_stop_timeout", extra={"timeout_s": timeout})

    async def _run(self) -> None:
        while not self._stopping:
            try:
                claim = await asyncio.to_thread(
                    self._ledger.claim_received, self._owner, datetime.now(UTC), self._lease
                )
            except Exception as error:  # noqa: BLE001 - the loop must outlive a ledger outage
                log.error(
                    "worker_claim_failed", extra={"reason": f"{type(error).__name__}: {error}"}
                )
                claim = None
            if claim is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_interval)
                continue
            await self._process(claim)

    async def _process(self, claim: ProcessingClaim) -> None:
        started = time.monotonic()
        done = threading.Event()
        heartbeat = threading.Thread(target=self._keep_lease, args=(claim, done), daemon=True)
        heartbeat.start()
        failure: Exception | None = None
        self._busy = True
        try:
            await asyncio.to_thread(process_claim, claim, self._store, self._ledger, self._config)
        except Exception as error:  # noqa: BLE001 - logged; the window is tried again later
            failure = error
        finally:
            self._busy = False
            done.set()
            PROCESSING_SECONDS.observe(time.monotonic() - started)
        if failure is None:
            self._failures.pop(claim.window_id, None)
            return
        # Stop the heartbeat first, so it cannot stretch the back-off lease set below.
        await asyncio.to_thread(heartbeat.join, self._lease.total_seconds())
        await self._back_off(claim, failure)

    async def _back_off(self, claim: ProcessingClaim, error: Exception) -> None:
        """Holds a window that failed unexpectedly (object store or ledger down, a decoder bug)
        for a growing delay, keeping it `received` so no data is given up, while the loop moves
        on to other windows instead of retrying this one at once and forever."""
        WINDOWS_PROCESSED.labels("error").inc()
        failures = self._failures.get(claim.window_id, 0) + 1
        self._failures[claim.window_id] = failures
        if isinstance(error, SpoolFull) and failures >= self._config.max_attempts:
            await self._quarantine_spool_full(claim, error, failures)
            return
        delay = min(self._poll_interval * 2 ** (failures - 1), MAX_BACKOFF_SECONDS)
        log.error(
            "window_processing_error",
            extra={
                "window": str(claim.window),
                "export_id": claim.export_id,
                "failures": failures,
                "retry_in_s": round(delay, 1),
                "reason": f"{type(error).__name__}: {error}",
            },
            exc_info=error,
        )
        until = datetime.now(UTC) + timedelta(seconds=delay)
        try:
            await asyncio.to_thread(self._ledger.renew_lease, claim.window_id, self._owner, until)
        except Exception as lease_error:  # noqa: BLE001 - the claim's own lease still holds it
            log.error(
                "worker_back_off_failed",
                extra={"reason": f"{type(lease_error).__name__}: {lease_error}"},
            )

    async def _quarantine_spool_full(
        self, claim: ProcessingClaim, error: SpoolFull, failures: int
    ) -> None:
        """A spool too small for this window will stay too small: after repeated tries the
        window is quarantined with what it needs, for an operator to free space and replay."""
        reason = f"{error} (tried {failures} times)"
        try:
            await asyncio.to_thread(
                self._ledger.quarantine, claim, reason=reason, now=datetime.now(UTC)
            )
        except Exception as ledger_error:  # noqa: BLE001 - the window stays received; retried
            log.error(
                "worker_quarantine_failed",
                extra={"reason": f"{type(ledger_error).__name__}: {ledger_error}"},
            )
            return
        # The ledger's lifecycle logs the transition (window_quarantined).
        self._failures.pop(claim.window_id, None)
        WINDOWS_PROCESSED.labels("quarantined").inc()

    def _keep_lease(self, claim: ProcessingClaim, done: threading.Event) -> None:
        interval = max(self._lease.total_seconds() / 3, 1.0)
        while not done.wait(interval):
            until = datetime.now(UTC) + self._lease
            try:
                if not self._ledger.renew_lease(claim.window_id, self._owner, until):
                    log.warning("lease_lost", extra={"window": str(claim.window)})
                    return
            except Exception as error:  # noqa: BLE001 - retried on the next beat
                log.warning("lease_renew_failed", extra={"reason": str(error)})

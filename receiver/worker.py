"""The processing worker: claims received windows from the ledger and processes them.

It runs in the service's event loop and does the heavy work in a thread. Work is found through
the ledger, not through memory, so whatever was received and not committed before a restart
(or by a replica that died) is picked up again: at once when the owner that held it is seen to
be dead (ledger/owners.py), else once its lease has run out.
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
from storage.errors import ErrorKind, kind_of, one_line
from storage.ledger import Ledger, ProcessingClaim
from storage.objectstore import ObjectStore

log = logging.getLogger("chat_archiver.receiver.worker")

# The longest a window that keeps failing unexpectedly waits between two tries.
MAX_BACKOFF_SECONDS = 300.0
# A window that fails this many times in a row with the same error that is not an outage is
# quarantined with it, instead of retried for ever.
SAME_ERROR_LIMIT = 3


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
        self._same_error: dict[int, tuple[str, int]] = {}
        self._waiting_seen: set[tuple[str, str]] = set()
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

    async def _register(self) -> None:
        """Makes this process's death visible to the next `serve` or another replica at once.
        Without it, leases still run out by time; so a failure here is logged, not fatal."""
        try:
            await asyncio.to_thread(self._ledger.register_owner, self._owner)
        except Exception as error:  # noqa: BLE001 - leases still expire by time without it
            log.error(
                "worker_register_failed", extra={"reason": f"{type(error).__name__}: {error}"}
            )

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
            return  # the window in hand keeps its lease; the owner's lock goes with the process
        try:
            await asyncio.to_thread(self._ledger.release_owner, self._owner)
        except Exception as error:  # noqa: BLE001 - the lock ends with the process anyway
            log.warning(
                "worker_release_failed", extra={"reason": f"{type(error).__name__}: {error}"}
            )

    async def _run(self) -> None:
        await self._register()
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
                await self._note_waiting()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_interval)
                continue
            await self._process(claim)

    async def _note_waiting(self) -> None:
        """Logs once per window and owner that a received window waits for another live
        owner's lease, so a wait is never silent."""
        try:
            waiting = await asyncio.to_thread(
                self._ledger.leased_elsewhere, self._owner, datetime.now(UTC)
            )
        except Exception as error:  # noqa: BLE001 - only a log line is lost; claiming goes on
            log.warning("worker_lease_check_failed", extra={"reason": str(error)})
            return
        for window, owner, until in waiting:
            if (str(window), owner) in self._waiting_seen:
                continue
            self._waiting_seen.add((str(window), owner))
            log.info(
                "window_waiting_for_lease",
                extra={"window": str(window), "owner": owner, "lease_until": until.isoformat()},
            )

    async def _process(self, claim: ProcessingClaim) -> None:
        started = time.monotonic()
        done = threading.Event()
        lost = threading.Event()
        heartbeat = threading.Thread(target=self._keep_lease, args=(claim, done, lost), daemon=True)
        heartbeat.start()
        failure: Exception | None = None
        self._busy = True
        try:
            await asyncio.to_thread(
                process_claim, claim, self._store, self._ledger, self._config, lost
            )
        except Exception as error:  # noqa: BLE001 - logged; the window is tried again later
            failure = error
        finally:
            self._busy = False
            done.set()
            PROCESSING_SECONDS.observe(time.monotonic() - started)
        if failure is None:
            self._failures.pop(claim.window_id, None)
            self._same_error.pop(claim.window_id, None)
            return
        # Stop the heartbeat first, so it cannot stretch the back-off lease set below.
        await asyncio.to_thread(heartbeat.join, self._lease.total_seconds())
        await self._back_off(claim, failure)

    async def _back_off(self, claim: ProcessingClaim, error: Exception) -> None:
        """Holds a window that failed unexpectedly (object store or ledger down, a decoder bug)
        for a growing delay, keeping it `received` so no data is given up, while the loop moves
        on to other windows instead of retrying this one at once and forever."""
        WINDOWS_PROCESSED.labels("error").inc()
        if await self._quarantine_if_repeated(claim, error):
            return
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

    async def _quarantine_if_repeated(self, claim: ProcessingClaim, error: Exception) -> bool:
        """Quarantines a window that failed SAME_ERROR_LIMIT times in a row with the same error
        that is not an outage (an outage of the ledger or the store is waited out instead)."""
        if kind_of(error) is ErrorKind.TRANSIENT:
            self._same_error.pop(claim.window_id, None)
            return False
        text = f"{type(error).__name__}: {one_line(error)}"
        previous, count = self._same_error.get(claim.window_id, ("", 0))
        count = count + 1 if previous == text else 1
        self._same_error[claim.window_id] = (text, count)
        if count < SAME_ERROR_LIMIT:
            return False
        reason = f"failed {count} times with the same error: {text}"
        try:
            await asyncio.to_thread(
                self._ledger.quarantine, claim, reason=reason, now=datetime.now(UTC)
            )
        except Exception as quarantine_error:  # noqa: BLE001 - the back-off below still holds it
            log.error("worker_quarantine_failed", extra={"reason": str(quarantine_error)})
            return False
        self._same_error.pop(claim.window_id, None)
        self._failures.pop(claim.window_id, None)
        return True

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

    def _keep_lease(
        self, claim: ProcessingClaim, done: threading.Event, lost: threading.Event
    ) -> None:
        interval = max(self._lease.total_seconds() / 3, 1.0)
        while not done.wait(interval):
            until = datetime.now(UTC) + self._lease
            try:
                if not self._ledger.renew_lease(claim.window_id, self._owner, until):
                    # Processing stops at its next batch or write; it logs that it gave up.
                    lost.set()
                    log.warning("lease_lost", extra={"window": str(claim.window)})
                    return
            except Exception as error:  # noqa: BLE001 - retried on the next beat
                log.warning("lease_renew_failed", extra={"reason": str(error)})

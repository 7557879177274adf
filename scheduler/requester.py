"""Requests due windows from the upstream: the path the schedule, `export` and `backfill` share."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from scheduler.client import (
    AuthRejected,
    ExportClient,
    PeriodTooLong,
    RetryPolicy,
    UpstreamError,
    UpstreamUnavailable,
)
from scheduler.metrics import API_KEY_REJECTED, EXPORT_REQUESTS, WINDOWS_PLANNED
from scheduler.planner import plan_windows, split_window
from storage.errors import ErrorKind, one_line
from storage.ledger import ExportAttempt, Ledger
from storage.redaction import add_token
from storage.schema import STREAM

log = logging.getLogger("chat_archiver.scheduler")

KEY_REJECTED = "api_key_rejected"
# A tick waits at most this long for its turn in the shared request stream; the next tick
# takes it up again.
MAX_TURN_WAIT = timedelta(minutes=5)
# How long a stopping process tries to give back a turn it did not use.
GIVE_BACK_TIMEOUT = 2.0


def key_fingerprint(api_key: str) -> str:
    """Identifies a key without revealing it, so a rejection is remembered per key."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RequestPolicy:
    window: timedelta
    settle_delay: timedelta
    callback_timeout: timedelta
    max_attempts: int
    per_tick: int = 20
    pacing: timedelta = timedelta(seconds=1)
    start: datetime | None = None


@dataclass
class TickReport:
    requested: list[str] = field(default_factory=list)
    deferred: int = 0
    # Why requesting stopped for now, and of which kind: USER (the API key was rejected; nothing
    # succeeds until an operator acts) or TRANSIENT (the upstream is unavailable; later).
    stopped: str | None = None
    stop_kind: ErrorKind | None = None


def callback_url(public_url: str, export_id: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/callbacks/{export_id}/{token}"


class Requester:
    def __init__(
        self,
        ledger: Ledger,
        client: ExportClient,
        *,
        public_url: str,
        api_key: str,
        policy: RequestPolicy,
        stream: str = STREAM,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._ledger = ledger
        self._client = client
        self._public_url = public_url
        self._fingerprint = key_fingerprint(api_key)
        self._policy = policy
        self._stream = stream
        self._clock = clock
        self._lock = asyncio.Lock()
        if client.on_throttled is None:
            client.on_throttled = self.throttled

    async def plan(self) -> int:
        """Adds every window from the start up to now - settle delay to the ledger."""
        start = self._policy.start
        if start is None:
            start = await asyncio.to_thread(self._ledger.created_at)
        windows = plan_windows(start, self._clock(), self._policy.window, self._policy.settle_delay)
        added = await asyncio.to_thread(self._ledger.plan, self._stream, windows)
        if added:
            WINDOWS_PLANNED.inc(added)
            log.info("windows_planned", extra={"added": added, "through": str(windows[-1].end)})
        return added

    def key_rejected(self) -> bool:
        rejected = self._ledger.get_meta(KEY_REJECTED) == self._fingerprint
        API_KEY_REJECTED.set(1 if rejected else 0)
        return rejected

    async def request_due(self) -> TickReport:
        """Sends up to `per_tick` due windows, oldest first, paced; one tick at a time."""
        report = TickReport()
        async with self._lock:
            if await asyncio.to_thread(self.key_rejected):
                report.stopped = "the upstream rejected the API key; change ARCHIVER_API_KEY"
                report.stop_kind = ErrorKind.USER
                # Every tick, so a replica started with a rejected key says so at once and keeps
                # saying it; callbacks of exports already requested are still taken.
                log.error("api_key_rejected", extra={"reason": report.stopped})
                return report
            for _ in range(self._policy.per_tick):
                # Pause before claiming, not after: an interrupted pause leaves nothing claimed.
                if not await self._take_turn():
                    break  # the shared stream is booked further ahead than a tick waits
                attempt = await self._claim()
                if attempt is None:
                    break
                stop = await self._send(attempt, report)
                if stop is not None:
                    report.stopped, report.stop_kind = str(stop), stop.kind
                    break
        return report

    async def _take_turn(self) -> bool:
        """Waits for this process's turn in the request stream that every process of the
        ledger shares (`pacing` apart, later after a Retry-After); False if it is too far."""
        now = self._clock()
        reserving = asyncio.ensure_future(
            asyncio.to_thread(
                self._ledger.reserve_request_slot, now, self._policy.pacing, MAX_TURN_WAIT
            )
        )
        try:
            # Shielded: a stop during the reservation still learns which turn it took.
            slot = await asyncio.shield(reserving)
            if slot is None:
                return False
            if slot > now:
                await asyncio.sleep((slot - now).total_seconds())
        except asyncio.CancelledError:
            await self._return_turn(reserving)
            raise
        return True

    async def _return_turn(self, reserving: asyncio.Future[datetime | None]) -> None:
        """Stopping while waiting for a turn: the turn was never used, so it must not hold
        back the next process (a restart, another replica) by a request nobody sent."""
        try:
            slot = await asyncio.wait_for(asyncio.shield(reserving), GIVE_BACK_TIMEOUT)
            if slot is not None:
                await asyncio.wait_for(
                    asyncio.to_thread(
                        self._ledger.give_back_request_slot, slot, self._policy.pacing
                    ),
                    GIVE_BACK_TIMEOUT,
                )
        except Exception as error:  # noqa: BLE001 - stopping goes on; the stream only waits longer
            log.warning("request_turn_not_returned", extra={"reason": one_line(error)})

    async def throttled(self, seconds: float) -> None:
        """The upstream asked to slow down (429, Retry-After): every process waits."""
        until = self._clock() + timedelta(seconds=seconds)
        await asyncio.to_thread(self._ledger.hold_requests, until)
        log.warning("export_requests_held", extra={"until": until.isoformat()})

    async def _claim(self) -> ExportAttempt | None:
        claiming = asyncio.ensure_future(
            asyncio.to_thread(
                self._ledger.claim_due,
                self._stream,
                self._clock(),
                limit=1,
                callback_timeout=self._policy.callback_timeout,
                max_attempts=self._policy.max_attempts,
            )
        )
        try:
            claimed = await asyncio.shield(claiming)
        except asyncio.CancelledError:
            # The claim completes in its thread regardless; give it back, or its window would
            # wait a whole callback timeout for a request that was never sent.
            for attempt in await claiming:
                self._give_back(attempt)
            raise
        return claimed[0] if claimed else None

    def _give_back(self, attempt: ExportAttempt) -> None:
        """Makes an attempt that was cancelled before its request was confirmed due again."""
        self._undo(attempt, "interrupted before the request was confirmed", self._clock())
        log.warning(
            "export_request_interrupted",
            extra={"window": str(attempt.window), "export_id": attempt.export_id},
        )

    async def _send(self, attempt: ExportAttempt, report: TickReport) -> UpstreamError | None:
        """Returns the error that must stop requesting for now, or None to go on."""
        url = callback_url(self._public_url, attempt.export_id, attempt.token)
        add_token(attempt.token)
        fields = {
            "window": str(attempt.window),
            "export_id": attempt.export_id,
            "attempt": attempt.attempt,
        }
        try:
            await self._client.request_export(attempt.window, url)
        except asyncio.CancelledError:
            # Whether the upstream saw it is unknown; asking again is safe, a late callback
            # of this attempt is still accepted.
            self._give_back(attempt)
            raise
        except UpstreamError as error:
            return await self._refused(attempt, error, report, fields)
        EXPORT_REQUESTS.labels("accepted").inc()
        report.requested.append(attempt.export_id)
        log.info("window_requested", extra=fields)
        return None

    async def _refused(
        self,
        attempt: ExportAttempt,
        error: UpstreamError,
        report: TickReport,
        fields: dict[str, object],
    ) -> UpstreamError | None:
        """Records a refused request by the error's kind; the lifecycle logs the transition."""
        if isinstance(error, PeriodTooLong):
            EXPORT_REQUESTS.labels("period_too_long").inc()
            await asyncio.to_thread(
                self._ledger.replace_with_halves,
                attempt.window_id,
                split_window(attempt.window),
                reason=str(error),
            )
            return None
        if error.kind is ErrorKind.USER:
            EXPORT_REQUESTS.labels("auth_rejected").inc()
            await asyncio.to_thread(self._undo, attempt, str(error), self._clock())
            if isinstance(error, AuthRejected):
                await asyncio.to_thread(self._ledger.set_meta, KEY_REJECTED, self._fingerprint)
                API_KEY_REJECTED.set(1)
            log.error("api_key_rejected", extra=fields | {"reason": str(error)})
            return error
        if error.kind is ErrorKind.PERMANENT:
            EXPORT_REQUESTS.labels("refused").inc()
            await asyncio.to_thread(self._undo, attempt, str(error), None)
            return None
        EXPORT_REQUESTS.labels("unavailable").inc()
        hint = error.retry_after if isinstance(error, UpstreamUnavailable) else None
        delay = hint or RetryPolicy().backoff(attempt.attempt + 2)
        retry_at = self._clock() + timedelta(seconds=max(delay, 1.0))
        await asyncio.to_thread(self._undo, attempt, str(error), retry_at)
        report.deferred += 1
        return UpstreamUnavailable(f"the upstream is unavailable: {error}")

    def _undo(self, attempt: ExportAttempt, reason: str, retry_at: datetime | None) -> None:
        self._ledger.request_failed(attempt.export_id, reason=reason, retry_at=retry_at)

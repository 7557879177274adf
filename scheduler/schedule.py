"""APScheduler wiring: the cron tick that plans windows, and the short tick that requests them."""

from __future__ import annotations

import logging
from datetime import UTC

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from scheduler.metrics import REQUEST_TICK_SUCCESS
from scheduler.requester import Requester, TickReport

log = logging.getLogger("chat_archiver.scheduler")

# A service that was down when its cron time passed runs one catch-up tick on start, not a burst.
MISFIRE_GRACE_SECONDS = 6 * 3600


def record_tick(report: TickReport) -> None:
    """A tick succeeded when nothing stopped it and the upstream did not refuse all it sent."""
    if report.stopped is None and (report.requested or not report.deferred):
        REQUEST_TICK_SUCCESS.set_to_current_time()


def build_scheduler(
    requester: Requester, cron: str, *, request_interval: float = 30.0
) -> AsyncIOScheduler:
    """Planning follows the cron schedule (UTC); requesting due windows, retries and callback
    timeouts are checked every `request_interval` seconds, so a backlog drains at the per-tick
    pace instead of waiting for the next night."""
    scheduler = AsyncIOScheduler(timezone=UTC)

    async def plan_and_request() -> None:
        try:
            await requester.plan()
            record_tick(await requester.request_due())
        except Exception as error:  # noqa: BLE001 - logged; the next tick tries again
            log.error("plan_tick_failed", extra={"reason": f"{type(error).__name__}: {error}"})

    async def request_due() -> None:
        try:
            record_tick(await requester.request_due())
        except Exception as error:  # noqa: BLE001 - logged; the next tick tries again
            log.error("request_tick_failed", extra={"reason": f"{type(error).__name__}: {error}"})

    scheduler.add_job(
        plan_and_request,
        CronTrigger.from_crontab(cron, timezone=UTC),
        id="plan",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=MISFIRE_GRACE_SECONDS,
    )
    scheduler.add_job(
        request_due,
        IntervalTrigger(seconds=request_interval, timezone=UTC),
        id="request",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=max(1, int(request_interval)),
    )
    return scheduler

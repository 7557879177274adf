"""The APScheduler wiring: UTC cron, coalesced catch-up, one instance at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from apscheduler.job import Job
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from scheduler.client import ExportClient
from scheduler.requester import Requester, RequestPolicy, TickReport
from scheduler.schedule import MISFIRE_GRACE_SECONDS, build_scheduler
from simulator.app import create_app
from simulator.config import SimulatorConfig
from storage.ledger import Ledger
from storage.schema import STREAM
from tests.servers import serve_in_thread

KEY = "schedule-key"
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


class CountingRequester(Requester):
    """The real requester, counting the ticks the scheduler gives it."""

    plans = 0
    requests = 0

    async def plan(self) -> int:
        self.plans += 1
        return await super().plan()

    async def request_due(self) -> TickReport:
        self.requests += 1
        return await super().request_due()


@pytest.fixture
def upstream() -> Iterator[str]:
    config = SimulatorConfig(api_key=KEY, allow_insecure_callbacks=True, drop_callbacks=True)
    with serve_in_thread(create_app(config)) as url:
        yield url


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        yield ledger


def _requester(ledger: Ledger, client: ExportClient, start: datetime) -> CountingRequester:
    policy = RequestPolicy(
        window=DAY,
        settle_delay=timedelta(0),
        callback_timeout=timedelta(hours=6),
        max_attempts=3,
        pacing=timedelta(0),
        start=start,
    )
    return CountingRequester(
        ledger, client, public_url="http://127.0.0.1:1", api_key=KEY, policy=policy
    )


def _jobs(cron: str, request_interval: float) -> dict[str, Job]:
    client = ExportClient("http://127.0.0.1:1", KEY)
    with Ledger.open("sqlite://") as ledger:
        requester = _requester(ledger, client, datetime(2026, 1, 1, tzinfo=UTC))
        scheduler = build_scheduler(requester, cron, request_interval=request_interval)
    return {job.id: job for job in scheduler.get_jobs()}


def test_planning_follows_the_cron_expression_in_utc_whatever_the_date() -> None:
    plan = _jobs("0 2 * * *", 30.0)["plan"]
    assert isinstance(plan.trigger, CronTrigger)
    assert plan.trigger.timezone == UTC
    # Across the nights when Europe and the US change their clocks, still 02:00 UTC.
    for day in ("2026-03-08", "2026-03-29", "2026-10-25", "2026-11-01"):
        before = datetime.fromisoformat(f"{day}T00:30:00+00:00")
        fire = plan.trigger.get_next_fire_time(None, before)
        assert fire == datetime.fromisoformat(f"{day}T02:00:00+00:00")
        assert fire.utcoffset() == timedelta(0)


def test_both_jobs_coalesce_missed_runs_and_never_overlap() -> None:
    jobs = _jobs("0 2 * * *", 30.0)
    assert set(jobs) == {"plan", "request"}
    for job in jobs.values():
        assert job.coalesce is True
        assert job.max_instances == 1
    assert jobs["plan"].misfire_grace_time == MISFIRE_GRACE_SECONDS
    request = jobs["request"]
    assert isinstance(request.trigger, IntervalTrigger)
    assert request.trigger.interval == timedelta(seconds=30)
    assert request.trigger.timezone == UTC
    assert request.misfire_grace_time == 30


def test_a_sub_second_request_interval_still_has_a_misfire_grace() -> None:
    request = _jobs("0 2 * * *", 0.5)["request"]
    assert request.trigger.interval == timedelta(seconds=0.5)
    assert request.misfire_grace_time is not None and request.misfire_grace_time >= 1


async def _run_with_missed_plan_ticks(requester: CountingRequester, missed: int) -> None:
    """Starts an hourly schedule as if its loop had stalled through `missed` runs, all of them
    within the misfire grace (so without coalescing each would run)."""
    last = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    scheduler = build_scheduler(requester, f"{last.minute} * * * *", request_interval=3600.0)
    scheduler.start()
    try:
        scheduler.modify_job("plan", next_run_time=last - missed * HOUR)
        await asyncio.sleep(0.5)
        assert requester.plans == 1
        await asyncio.sleep(0.5)
        job = scheduler.get_job("plan")
        assert job is not None and job.next_run_time == last + HOUR
    finally:
        scheduler.shutdown(wait=False)


def test_runs_missed_while_stalled_become_one_catch_up_tick_not_a_burst(
    sqlite_ledger: Ledger, upstream: str
) -> None:
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - 3 * DAY

    async def run() -> CountingRequester:
        client = ExportClient(upstream, KEY)
        requester = _requester(sqlite_ledger, client, start)
        try:
            await _run_with_missed_plan_ticks(requester, missed=4)
        finally:
            await client.aclose()
        return requester

    requester = asyncio.run(run())
    assert requester.plans == 1
    assert requester.requests == 1
    # The one tick planned and requested every window the stall left behind, each once.
    assert [record.state for record in sqlite_ledger.windows(STREAM)] == ["requested"] * 3
    by_range = httpx.get(f"{upstream}/_sim/state").json()["export_requests_by_range"]
    assert sorted(by_range.values()) == [1, 1, 1]

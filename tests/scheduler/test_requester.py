"""The request path against the simulator and a real ledger: attempts, timeouts, upstream errors."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from scheduler.client import ExportClient, RetryPolicy
from scheduler.requester import Requester, RequestPolicy, TickReport
from simulator.app import create_app
from simulator.config import SimulatorConfig
from storage.layout import Window
from storage.ledger import Ledger
from storage.schema import STREAM
from tests.servers import serve_in_thread

KEY = "requester-key"
DAY = timedelta(days=1)
START = datetime(2026, 3, 1, tzinfo=UTC)
FAST = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def upstream() -> Iterator[str]:
    config = SimulatorConfig(api_key=KEY, allow_insecure_callbacks=True, drop_callbacks=True)
    with serve_in_thread(create_app(config)) as url:
        yield url


def _policy(**changes: object) -> RequestPolicy:
    values: dict[str, object] = {
        "window": DAY,
        "settle_delay": timedelta(minutes=15),
        "callback_timeout": timedelta(hours=6),
        "max_attempts": 3,
        "per_tick": 10,
        "pacing": timedelta(0),
        "start": START,
    }
    values.update(changes)
    return RequestPolicy(**values)  # type: ignore[arg-type]


def _tick(
    ledger: Ledger, url: str, clock: Clock, policy: RequestPolicy, key: str = KEY, plan: bool = True
) -> TickReport:
    async def run() -> TickReport:
        client = ExportClient(url, key, retry=FAST)
        requester = Requester(
            ledger, client, public_url="http://127.0.0.1:1", api_key=key, policy=policy, clock=clock
        )
        try:
            if plan:
                await requester.plan()
            return await requester.request_due()
        finally:
            await client.aclose()

    return asyncio.run(run())


def _sent(url: str) -> list[dict[str, object]]:
    return list(httpx.get(f"{url}/_sim/state").json()["export_requests"])


def _states(ledger: Ledger) -> list[str]:
    return [record.state for record in ledger.windows(STREAM)]


def test_windows_are_requested_oldest_first_up_to_the_settle_delay(
    ledger: Ledger, upstream: str
) -> None:
    clock = Clock(START + 3 * DAY + timedelta(minutes=10))
    report = _tick(ledger, upstream, clock, _policy())
    assert len(report.requested) == 2
    assert [r["rangeStart"] for r in _sent(upstream)] == [
        "2026-03-01T00:00:00Z",
        "2026-03-02T00:00:00Z",
    ]
    clock.now += timedelta(minutes=10)
    assert len(_tick(ledger, upstream, clock, _policy()).requested) == 1
    assert _states(ledger) == ["requested"] * 3


def test_after_downtime_a_tick_requests_at_most_its_limit(ledger: Ledger, upstream: str) -> None:
    clock = Clock(START + 30 * DAY)
    assert len(_tick(ledger, upstream, clock, _policy(per_tick=4)).requested) == 4
    assert _states(ledger).count("planned") == 25
    assert len(_tick(ledger, upstream, clock, _policy(per_tick=4)).requested) == 4


def test_a_missing_callback_is_requested_again_then_the_window_fails(
    ledger: Ledger, upstream: str
) -> None:
    clock = Clock(START + DAY + timedelta(hours=1))
    policy = _policy(max_attempts=2)
    first = _tick(ledger, upstream, clock, policy).requested
    clock.now += timedelta(hours=7)
    second = _tick(ledger, upstream, clock, policy).requested
    assert len(first) == len(second) == 1 and first != second
    clock.now += timedelta(hours=7)
    assert _tick(ledger, upstream, clock, policy).requested == []
    [record] = ledger.windows(STREAM)
    assert record.state == "failed"
    assert "no callback" in (record.reason or "")
    assert len(_sent(upstream)) == 2


def test_a_rate_limited_request_is_deferred_without_using_an_attempt(
    ledger: Ledger, upstream: str
) -> None:
    faults = {"fail_export_requests": {"status": 429, "count": 2, "retry_after": 0}}
    httpx.post(f"{upstream}/_sim/faults", json=faults).raise_for_status()
    clock = Clock(START + DAY + timedelta(hours=1))
    report = _tick(ledger, upstream, clock, _policy())
    assert report.deferred == 1 and report.stopped
    [record] = ledger.windows(STREAM)
    assert (record.state, record.attempts) == ("planned", 0)
    clock.now += timedelta(minutes=5)
    assert len(_tick(ledger, upstream, clock, _policy()).requested) == 1


def test_a_rejected_key_stops_all_requests_until_the_key_changes(
    ledger: Ledger, upstream: str
) -> None:
    clock = Clock(START + 3 * DAY)
    report = _tick(ledger, upstream, clock, _policy(), key="revoked-key")
    assert report.stopped and "rejected the API key" in report.stopped
    again = _tick(ledger, upstream, clock, _policy(), key="revoked-key")
    assert again.stopped and len(_sent(upstream)) == 1
    assert set(_states(ledger)) == {"planned"}
    assert len(_tick(ledger, upstream, clock, _policy(), key=KEY).requested) == 2


def test_a_period_over_six_months_is_split_into_halves(ledger: Ledger, upstream: str) -> None:
    long = Window(START, START + timedelta(days=200))
    ledger.plan(STREAM, [long])
    clock = Clock(START + timedelta(days=201))
    _tick(ledger, upstream, clock, _policy(), plan=False)
    _tick(ledger, upstream, clock, _policy(), plan=False)
    requested = sorted(r.window for r in ledger.windows(STREAM, states=["requested"]))
    assert requested == [
        Window(START, START + timedelta(days=100)),
        Window(START + timedelta(days=100), START + timedelta(days=200)),
    ]

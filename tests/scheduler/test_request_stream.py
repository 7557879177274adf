"""One request stream per deployment: processes sharing a ledger take turns, `pacing` apart,
and a 429 with Retry-After holds every one of them back."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from scheduler.client import ExportClient, RetryPolicy
from scheduler.requester import Requester, RequestPolicy
from simulator.app import create_app
from simulator.config import SimulatorConfig
from storage.ledger import Ledger
from tests.servers import serve_in_thread

KEY = "stream-key"
DAY = timedelta(days=1)
START = datetime(2026, 1, 1, tzinfo=UTC)
PACING = timedelta(seconds=0.4)


@pytest.fixture
def upstream() -> Iterator[str]:
    config = SimulatorConfig(api_key=KEY, allow_insecure_callbacks=True, drop_callbacks=True)
    with serve_in_thread(create_app(config)) as url:
        yield url


def _policy() -> RequestPolicy:
    return RequestPolicy(
        window=DAY,
        settle_delay=timedelta(0),
        callback_timeout=timedelta(hours=6),
        max_attempts=3,
        per_tick=4,
        pacing=PACING,
        start=START,
    )


async def _requesters(ledgers: list[Ledger], url: str) -> int:
    """One tick of one requester per ledger handle (a process each), all at once."""
    clients = [
        ExportClient(url, KEY, retry=RetryPolicy(attempts=2, base_delay=0.01)) for _ in ledgers
    ]
    requesters = [
        Requester(ledger, client, public_url="http://127.0.0.1:1", api_key=KEY, policy=_policy())
        for ledger, client in zip(ledgers, clients, strict=True)
    ]
    try:
        await requesters[0].plan()
        reports = await asyncio.gather(*(requester.request_due() for requester in requesters))
        return sum(len(report.requested) for report in reports)
    finally:
        for client in clients:
            await client.aclose()


def _received(url: str) -> list[datetime]:
    entries = httpx.get(f"{url}/_sim/state").json()["export_requests"]
    return sorted(datetime.fromisoformat(entry["receivedAt"]) for entry in entries)


def _next_slot(ledger: Ledger) -> datetime:
    """The shared stream's next free turn, read without reserving one (pacing 0)."""
    slot = ledger.reserve_request_slot(datetime.now(UTC), timedelta(0), timedelta(days=1))
    assert slot is not None
    return slot


def test_processes_sharing_a_ledger_send_one_paced_stream(ledger: Ledger, upstream: str) -> None:
    other = Ledger.open(ledger.url)
    try:
        sent = asyncio.run(_requesters([ledger, other], upstream))
    finally:
        other.close()

    received = _received(upstream)
    assert sent == len(received) == 8
    # Each process alone would send its four in 3 x pacing; sharing, the eight take 7 x (less
    # what a slow request loses on its way, on a busy machine).
    span = (received[-1] - received[0]).total_seconds()
    assert span >= 5 * PACING.total_seconds()


def test_a_429_with_retry_after_holds_back_every_process(ledger: Ledger, upstream: str) -> None:
    fault = {"fail_export_requests": {"status": 429, "count": 1, "retry_after": 2}}
    httpx.post(f"{upstream}/_sim/faults", json=fault).raise_for_status()
    before = datetime.now(UTC)

    asyncio.run(_requesters([ledger], upstream))

    other = Ledger.open(ledger.url)
    try:
        held = other.reserve_request_slot(before, timedelta(0), max_wait=timedelta(0))
        assert held is None  # another process could not send before the Retry-After
        slot = other.reserve_request_slot(before, timedelta(0), max_wait=timedelta(hours=1))
        assert slot is not None and slot >= before + timedelta(seconds=2)
    finally:
        other.close()


TURN_PACING = timedelta(seconds=10)


def _two_turns(ledger: Ledger, now: datetime) -> tuple[datetime, datetime]:
    """Two turns reserved back to back at `now`, TURN_PACING apart."""
    first = ledger.reserve_request_slot(now, TURN_PACING, max_wait=timedelta(hours=1))
    second = ledger.reserve_request_slot(now, TURN_PACING, max_wait=timedelta(hours=1))
    assert first == now and second == now + TURN_PACING
    return first, second


def test_a_turn_given_back_unused_does_not_hold_back_the_next_process(ledger: Ledger) -> None:
    now = datetime.now(UTC)
    pacing = TURN_PACING
    _, second = _two_turns(ledger, now)

    assert ledger.give_back_request_slot(second, pacing)

    other = Ledger.open(ledger.url)
    try:
        # The first request was sent, so pacing still counts from it; the unused turn does not.
        assert other.reserve_request_slot(now, timedelta(0), timedelta(hours=1)) == second
    finally:
        other.close()


def test_a_turn_reserved_after_it_keeps_the_given_back_one_in_the_stream(ledger: Ledger) -> None:
    now = datetime.now(UTC)
    pacing = TURN_PACING
    mine, theirs = _two_turns(ledger, now)

    assert not ledger.give_back_request_slot(mine, pacing)
    assert ledger.reserve_request_slot(now, pacing, timedelta(hours=1)) == theirs + pacing


def test_a_requester_stopped_while_waiting_for_its_turn_gives_the_turn_back(
    ledger: Ledger, upstream: str
) -> None:
    pacing = timedelta(seconds=30)

    async def stopped_while_waiting() -> None:
        client = ExportClient(upstream, KEY, retry=RetryPolicy(attempts=2, base_delay=0.01))
        policy = RequestPolicy(**{**_policy().__dict__, "pacing": pacing})
        requester = Requester(
            ledger, client, public_url="http://127.0.0.1:1", api_key=KEY, policy=policy
        )
        try:
            await requester.plan()
            tick = asyncio.create_task(requester.request_due())
            # The tick sent its first request and now waits for its second turn.
            while _next_slot(ledger) - datetime.now(UTC) < pacing:
                await asyncio.sleep(0.02)
            tick.cancel()
            with pytest.raises(asyncio.CancelledError):
                await tick
        finally:
            await client.aclose()

    asyncio.run(stopped_while_waiting())

    [sent] = _received(upstream)
    assert _next_slot(ledger) - sent < pacing + timedelta(seconds=1)

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from scheduler.client import (
    AuthRejected,
    ExportClient,
    PeriodTooLong,
    RetryPolicy,
    UpstreamUnavailable,
)
from simulator.app import create_app
from simulator.config import SimulatorConfig
from storage.layout import Window
from tests.servers import serve_in_thread

KEY = "client-test-key"
WINDOW = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
CALLBACK = "http://127.0.0.1:9/callbacks/x/y"
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)


@pytest.fixture
def upstream() -> Iterator[str]:
    config = SimulatorConfig(api_key=KEY, allow_insecure_callbacks=True, drop_callbacks=True)
    with serve_in_thread(create_app(config)) as url:
        yield url


def _request(url: str, key: str = KEY, window: Window = WINDOW) -> None:
    async def run() -> None:
        client = ExportClient(url, key, retry=FAST)
        try:
            await client.request_export(window, CALLBACK)
        finally:
            await client.aclose()

    asyncio.run(run())


def _faults(url: str, **faults: object) -> None:
    httpx.post(f"{url}/_sim/faults", json=faults).raise_for_status()


def _requests(url: str) -> list[dict[str, object]]:
    return list(httpx.get(f"{url}/_sim/state").json()["export_requests"])


def test_an_accepted_request_sends_the_documented_body(upstream: str) -> None:
    _request(upstream)
    [sent] = _requests(upstream)
    assert sent["rangeStart"] == "2026-01-01T00:00:00Z"
    assert sent["rangeEnd"] == "2026-01-02T00:00:00Z"
    assert sent["callbackUrl"] == CALLBACK
    assert sent["language"] == "enUs"


def test_429_is_retried_after_the_retry_after_delay(upstream: str) -> None:
    _faults(upstream, fail_export_requests={"status": 429, "count": 1, "retry_after": 1})
    started = time.monotonic()
    _request(upstream)
    assert time.monotonic() - started >= 0.9
    assert [r["status"] for r in _requests(upstream)] == [429, 200]


def test_5xx_is_retried_then_given_up_with_a_clear_error(upstream: str) -> None:
    _faults(upstream, fail_export_requests={"status": 500, "count": 5})
    with pytest.raises(UpstreamUnavailable, match="gave up after 3 attempts: 500"):
        _request(upstream)
    assert len(_requests(upstream)) == 3


def test_a_rejected_key_is_not_retried(upstream: str) -> None:
    with pytest.raises(AuthRejected, match="rejected the API key"):
        _request(upstream, key="wrong")
    assert len(_requests(upstream)) == 1


def test_a_period_over_six_months_is_reported_as_such(upstream: str) -> None:
    long = Window(WINDOW.start, WINDOW.start + timedelta(days=200))
    with pytest.raises(PeriodTooLong, match="6 months"):
        _request(upstream, window=long)


def test_an_unreachable_upstream_is_unavailable_not_a_crash() -> None:
    with pytest.raises(UpstreamUnavailable, match="ConnectError"):
        _request("http://127.0.0.1:9")

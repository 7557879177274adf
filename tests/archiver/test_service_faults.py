"""Probes and metrics while a dependency stalls: `/healthz` never waits, `/readyz` answers within
2 s with the reason, callbacks keep being answered, and a rejected API key is loud but does not
make the replica unready (callbacks of exports already requested need no key)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from scheduler.planner import align_down
from simulator.app import create_app as create_simulator
from simulator.config import SimulatorConfig
from storage.layout import Window
from storage.objectstore import S3Options
from tests.metrics_text import sample
from tests.servers import TcpProxy, serve_in_thread
from tests.service import running_service

WINDOW = Window(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 2, tzinfo=UTC))
UNKNOWN_CALLBACK = f"/callbacks/{'0' * 32}/{'A' * 43}"


def _timed(method: str, url: str, **kwargs: object) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.request(method, url, timeout=30, **kwargs)  # type: ignore[arg-type]
    return response, time.monotonic() - started


def _poll(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def stalling_s3(s3_endpoint: str) -> Iterator[TcpProxy]:
    with TcpProxy(int(s3_endpoint.rsplit(":", 1)[1])) as proxy:
        yield proxy


def test_a_stalled_object_store_makes_readyz_503_fast_and_callbacks_still_answer(
    tmp_path: Path, s3_bucket: str, stalling_s3: TcpProxy
) -> None:
    s3 = S3Options(endpoint_url=f"http://127.0.0.1:{stalling_s3.port}")
    with running_service(tmp_path, storage_url=f"s3://{s3_bucket}/lake", s3=s3) as service:
        attempt = service.export_for(WINDOW)
        assert httpx.get(f"{service.url}/readyz").status_code == 200
        stalling_s3.stall()
        stuck: list[httpx.Response] = []
        sender = threading.Thread(
            target=lambda: stuck.append(
                httpx.post(service.callback_url(attempt), content=b"{}", timeout=60)
            )
        )
        sender.start()
        for _ in range(3):
            ready, took = _timed("GET", f"{service.url}/readyz")
            assert ready.status_code == 503 and took < 2.0, (ready.text, took)
            assert "object store" in " ".join(ready.json()["problems"])
        unknown, took = _timed("POST", f"{service.url}{UNKNOWN_CALLBACK}", content=b"{}")
        assert unknown.status_code == 404 and took < 1.0, took
        health, took = _timed("GET", f"{service.url}/healthz")
        assert health.status_code == 200 and took < 1.0
        sender.join(timeout=30)
        [answer] = stuck
        assert answer.status_code == 503
        assert "object store unavailable" in answer.json()["detail"]
        stalling_s3.resume()
        _poll(lambda: httpx.get(f"{service.url}/readyz").status_code == 200, 30, "ready again")


@pytest.fixture
def stalling_postgres(fresh_postgres_url: str) -> Iterator[tuple[str, TcpProxy]]:
    url = make_url(fresh_postgres_url)
    with TcpProxy(url.port or 5432, url.host or "127.0.0.1") as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port)
        yield proxied.render_as_string(hide_password=False), proxy


def test_metrics_scrapes_during_a_ledger_stall_leave_healthz_answering(
    tmp_path: Path, stalling_postgres: tuple[str, TcpProxy]
) -> None:
    proxied_url, proxy = stalling_postgres
    with running_service(tmp_path, ledger_url=proxied_url) as service:
        _poll(
            lambda: sample(service.url, "archiver_windows", {"state": "planned"}) is not None,
            10,
            "the first ledger summary",
        )
        proxy.stall()
        try:
            health: list[float] = []

            def probe_health() -> None:
                for _ in range(20):
                    response, took = _timed("GET", f"{service.url}/healthz")
                    assert response.status_code == 200
                    health.append(took)
                    time.sleep(0.2)

            prober = threading.Thread(target=probe_health)
            prober.start()
            ages: list[float] = []
            # Each scrape waits briefly for a ledger read the stall never answers, and then
            # answers with the last values, whose age grows.
            while not ages or ages[-1] < 3:
                scrape, took = _timed("GET", f"{service.url}/metrics")
                assert scrape.status_code == 200 and took < 2.0, took
                age = sample(service.url, "archiver_ledger_summary_age_seconds")
                assert age is not None
                ages.append(age)
            prober.join()
            assert len(health) == 20 and max(health) < 1.0, health
            ready, took = _timed("GET", f"{service.url}/readyz")
            assert ready.status_code == 503 and took < 2.0
            assert "ledger" in " ".join(ready.json()["problems"])
        finally:
            proxy.resume()


def test_a_rejected_api_key_is_loud_but_leaves_the_replica_ready(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="chat_archiver.scheduler")
    config = SimulatorConfig(api_key="the-real-key", allow_insecure_callbacks=True)
    hour = timedelta(hours=1)
    with (
        serve_in_thread(create_simulator(config)) as simulator,
        running_service(
            tmp_path,
            api_url=simulator,
            api_key="a-revoked-key",
            window=hour,
            start=align_down(datetime.now(UTC), hour) - 2 * hour,
            settle_delay=timedelta(0),
            request_pacing=timedelta(0),
            request_interval=timedelta(seconds=0.5),
        ) as service,
    ):
        _poll(
            lambda: sample(service.url, "archiver_api_key_rejected") == 1.0,
            15,
            "the api_key_rejected gauge",
        )
        _poll(
            lambda: sum(r.getMessage() == "api_key_rejected" for r in caplog.records) >= 2,
            15,
            "an api_key_rejected line at start and on a later tick",
        )
        ready = httpx.get(f"{service.url}/readyz")
        assert ready.status_code == 200
        assert "rejected the API key" in " ".join(ready.json()["warnings"])
        assert "a-revoked-key" not in caplog.text

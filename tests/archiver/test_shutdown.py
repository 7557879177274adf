"""SIGTERM stops `serve` gracefully: in-flight work is finished or given back, exit code 0."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from simulator.app import create_app as create_simulator
from simulator.state import range_key
from storage.layout import Window
from storage.ledger import Ledger
from storage.lifecycle import WindowState
from storage.schema import STREAM
from storage.stores import open_store
from tests.harness import (
    ServiceProcess,
    archived_as_api_records,
    expected_messages,
    loopback_simulator,
    read_archive,
    recent_hours,
    service_env,
    wait_for_states,
)
from tests.servers import SlowFiles, free_port, serve_in_thread

HOUR = timedelta(hours=1)
SEED = 31
PER_DAY = 480
STOP_TIMEOUT = 40.0


def _events(log_path: Path) -> list[str]:
    events = []
    for line in log_path.read_text().splitlines():
        if line.startswith("{"):
            events.append(json.loads(line)["event"])
    return events


@pytest.fixture
def slow_files() -> Iterator[tuple[SlowFiles, str]]:
    files = SlowFiles(stall=2.0)
    with serve_in_thread(files.app()) as url:
        yield files, url


def _env(simulator_url: str, tmp_path: Path, windows: list[Window], **extra: str) -> dict[str, str]:
    return service_env(
        api_url=simulator_url,
        ledger_url=f"sqlite:///{tmp_path}/ledger.db",
        storage_url=f"file://{tmp_path}/archive",
        port=free_port(),
        ARCHIVER_WINDOW="1h",
        ARCHIVER_START=windows[0].start.isoformat(),
        **extra,
    )


def _requests(simulator_url: str, windows: list[Window]) -> list[int]:
    counts = httpx.get(f"{simulator_url}/_sim/state").json()["export_requests_by_range"]
    return [counts.get(range_key(w.start, w.end), 0) for w in windows]


def test_sigterm_finishes_the_window_being_processed_and_exits_0(
    slow_files: tuple[SlowFiles, str], tmp_path: Path
) -> None:
    files, files_url = slow_files
    windows = recent_hours(1)
    with serve_in_thread(
        create_simulator(loopback_simulator(SEED, PER_DAY, public_url=files_url))
    ) as simulator_url:
        files.target = simulator_url
        env = _env(simulator_url, tmp_path, windows)
        service = ServiceProcess(env, tmp_path / "serve.log").start()
        try:
            assert files.started.wait(20), service.logs()
            with Ledger.open(env["ARCHIVER_LEDGER_URL"]) as ledger:
                assert ledger.windows(STREAM)[0].state == "received"
                code = service.terminate(timeout=STOP_TIMEOUT)
                record = ledger.windows(STREAM)[0]
        finally:
            service.kill()
    assert code == 0, service.logs()
    events = _events(service.log_path)
    assert events.index("service_stopping") < events.index("window_committed")
    assert events.index("window_committed") < events.index("service_stopped")
    assert "worker_stop_timeout" not in events
    assert record.state == "committed" and record.attempts == 1
    store = open_store(env["ARCHIVER_STORAGE_URL"])
    assert archived_as_api_records(read_archive(store)) == expected_messages(SEED, PER_DAY, windows)


def test_a_callback_that_arrives_while_stopped_is_taken_after_the_restart(
    tmp_path: Path,
) -> None:
    windows = recent_hours(1)
    # The callback comes a second after the request and is retried for several seconds.
    config = loopback_simulator(
        SEED, PER_DAY, callback_delay=1.0, callback_retries=40, callback_retry_delay=0.25
    )
    with serve_in_thread(create_simulator(config)) as simulator_url:
        env = _env(simulator_url, tmp_path, windows)
        service = ServiceProcess(env, tmp_path / "serve.log").start()
        try:
            deadline = time.monotonic() + 20
            while _requests(simulator_url, windows) != [1]:
                assert time.monotonic() < deadline, service.logs()
                time.sleep(0.02)
            assert service.terminate(timeout=STOP_TIMEOUT) == 0, service.logs()
            with Ledger.open(env["ARCHIVER_LEDGER_URL"]) as ledger:
                assert ledger.windows(STREAM)[0].state == "requested"
                service.start()
                wait_for_states(ledger, 1, timeout=30)
                record = ledger.windows(STREAM)[0]
            assert service.terminate(timeout=STOP_TIMEOUT) == 0, service.logs()
        finally:
            service.kill()
        assert _requests(simulator_url, windows) == [1]
    assert record.attempts == 1
    assert _events(service.log_path).count("service_stopped") == 2
    store = open_store(env["ARCHIVER_STORAGE_URL"])
    assert archived_as_api_records(read_archive(store)) == expected_messages(SEED, PER_DAY, windows)


def test_sigterm_between_paced_requests_leaves_no_window_waiting_for_a_callback_timeout(
    tmp_path: Path,
) -> None:
    windows = recent_hours(3)
    with serve_in_thread(create_simulator(loopback_simulator(SEED, PER_DAY))) as simulator_url:
        env = _env(simulator_url, tmp_path, windows, ARCHIVER_REQUEST_PACING="5s")
        service = ServiceProcess(env, tmp_path / "serve.log").start()
        try:
            deadline = time.monotonic() + 20
            while sum(_requests(simulator_url, windows)) < 1:
                assert time.monotonic() < deadline, service.logs()
                time.sleep(0.02)
            assert service.terminate(timeout=STOP_TIMEOUT) == 0, service.logs()
            with Ledger.open(env["ARCHIVER_LEDGER_URL"]) as ledger:
                # Stopped mid-tick: what was sent is in flight, the rest is still planned.
                states = [record.state for record in ledger.windows(STREAM)]
                assert states.count(WindowState.PLANNED) >= 1
                service.env = env | {"ARCHIVER_REQUEST_PACING": "0s"}
                service.start()
                # The callback timeout is 6 hours: this finishes only if nothing was stranded.
                wait_for_states(ledger, len(windows), timeout=30)
            assert service.terminate(timeout=STOP_TIMEOUT) == 0, service.logs()
        finally:
            service.kill()
        counts = _requests(simulator_url, windows)
    # A request cut off on the wire is given back and may be sent once more; nothing else is.
    assert all(1 <= count <= 2 for count in counts) and sum(counts) <= len(windows) + 1
    store = open_store(env["ARCHIVER_STORAGE_URL"])
    assert archived_as_api_records(read_archive(store)) == expected_messages(SEED, PER_DAY, windows)

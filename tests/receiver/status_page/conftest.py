"""A running service whose ledger holds a window in each state an operator meets, reached the
way they get there: real callbacks to the receiver, real processing by the worker."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from storage.layout import Window
from storage.schema import STREAM
from tests.service import RunningService, running_service

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
DAY = datetime(2026, 11, 20, tzinfo=UTC)
HOUR = timedelta(hours=1)


def hour(n: int) -> Window:
    return Window(DAY + n * HOUR, DAY + (n + 1) * HOUR)


@dataclass
class Populated:
    service: RunningService
    committed: Window
    requested: Window
    planned: Window
    failed: Window
    quarantined: Window


def _messages(window: Window, count: int) -> bytes:
    lines = [
        json.dumps(
            {
                "id": f"00000000-0000-4000-8000-{window.start.hour:04d}{index:08d}",
                "chatId": "11111111-1111-4111-8111-111111111111",
                "content": f"message {index}",
                "role": "user",
                "createdAt": (window.start + timedelta(minutes=index)).isoformat(),
            }
        )
        for index in range(count)
    ]
    return ("\n".join(lines) + "\n").encode()


def _wait_for(service: RunningService, window: Window, state: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        record = service.ledger.window(STREAM, window)
        if record is not None and record.state == state:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{window} did not become {state}: {record}")
        time.sleep(0.05)


def _after_the_startup_tick(started: float) -> None:
    """The service's catch-up tick at start could claim a window planned here before the test
    does; wait until that tick has run (it finds nothing due on a new ledger)."""
    deadline = time.monotonic() + 15
    name = "archiver_request_tick_success_timestamp_seconds"
    while (REGISTRY.get_sample_value(name) or 0) < started:
        if time.monotonic() > deadline:
            raise AssertionError("the service's startup request tick did not finish")
        time.sleep(0.02)


def populate(service: RunningService, started: float) -> Populated:
    _after_the_startup_tick(started)
    windows = Populated(service, hour(1), hour(2), hour(3), hour(4), hour(5))
    for window, body in (
        (windows.committed, _messages(windows.committed, 12)),
        (windows.failed, json.dumps({"status": "failed", "error": "export job crashed"}).encode()),
        (windows.quarantined, b"\x00\x01\x02 this is no export format"),
    ):
        attempt = service.export_for(window)
        answer = httpx.post(service.callback_url(attempt), content=body, timeout=10)
        assert answer.status_code == 200, answer.text
    service.export_for(windows.requested)
    service.ledger.plan(STREAM, [windows.planned])
    _wait_for(service, windows.committed, "committed")
    _wait_for(service, windows.failed, "failed")
    _wait_for(service, windows.quarantined, "quarantined")
    return windows


@pytest.fixture
def populated(tmp_path: Path) -> Iterator[Populated]:
    started = time.time()
    with running_service(tmp_path, admin_token=ADMIN_TOKEN, max_attempts=1) as service:
        yield populate(service, started)


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Populated]:
    started = time.time()
    with running_service(tmp_path, max_attempts=1) as service:
        yield populate(service, started)

"""A forced re-export supersedes every earlier export of its window, even when the platform
redelivers an earlier export's callback after the re-export was requested; re-requests of a
window in flight stay eligible. Real servers: the service under uvicorn, the simulator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from archiver.commands.replay import replay
from archiver.service import export_client, requester_for
from simulator.app import create_app as create_simulator
from storage.layout import Window
from storage.ledger import Ledger
from storage.lifecycle import WindowState
from storage.schema import STREAM
from tests.harness import API_KEY, loopback_simulator, read_archive
from tests.servers import serve_in_thread
from tests.service import RunningService, running_service

WINDOW = Window(datetime(2026, 3, 1, 6, tzinfo=UTC), datetime(2026, 3, 1, 7, tzinfo=UTC))
SEED = 41
PER_DAY = 480


@pytest.fixture
def simulator() -> Iterator[str]:
    config = loopback_simulator(SEED, PER_DAY)
    with serve_in_thread(create_simulator(config)) as url:
        yield url


@pytest.fixture
def service(tmp_path: Path, simulator: str) -> Iterator[RunningService]:
    with running_service(tmp_path, api_url=simulator, api_key=API_KEY) as running:
        yield running


def _faults(simulator: str, **faults: object) -> None:
    httpx.post(f"{simulator}/_sim/faults", json=faults, timeout=10).raise_for_status()


def _request(service: RunningService, *, include_committed: bool, rerequest: bool) -> None:
    """What `export` does: make the window due, then one request tick of the shared path."""
    ledger = service.ledger
    ledger.force_due(
        STREAM,
        [WINDOW],
        include_committed=include_committed,
        rerequest=rerequest,
        now=datetime.now(UTC),
    )

    async def tick() -> None:
        client = export_client(service.settings)
        try:
            report = await requester_for(service.settings, ledger, client).request_due()
            assert report.requested, report
        finally:
            await client.aclose()

    asyncio.run(tick())


def _wait(check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _state(ledger: Ledger) -> WindowState | None:
    record = ledger.window(STREAM, WINDOW)
    return record.state if record else None


def _callback_states(ledger: Ledger, export_id: str) -> list[str]:
    return [callback.state for callback in ledger.callbacks(export_id)]


def test_a_late_redelivery_of_the_first_export_is_superseded_and_the_newest_rows_stand(
    service: RunningService, simulator: str
) -> None:
    ledger = service.ledger
    # The first export's callback comes again 1.5 s after it was first delivered.
    _faults(
        simulator,
        revise_per_request=True,
        callback_shape="inline-ndjson",
        redeliver={"count": 1, "after": 1.5},
    )
    _request(service, include_committed=True, rerequest=False)
    _wait(lambda: _state(ledger) == WindowState.COMMITTED)
    first = ledger.window(STREAM, WINDOW)
    assert first is not None and first.export_id is not None

    # Messages were edited upstream: the forced re-export's callback arrives after the
    # redelivery of the first one.
    _faults(simulator, callback_delay=3.0)
    _request(service, include_committed=True, rerequest=False)
    _wait(lambda: "superseded" in _callback_states(ledger, first.export_id))
    assert _state(ledger) == WindowState.REQUESTED
    _wait(lambda: _state(ledger) == WindowState.COMMITTED)

    second = ledger.window(STREAM, WINDOW)
    assert second is not None and second.export_id != first.export_id
    assert _callback_states(ledger, first.export_id) == ["processed", "superseded"]
    assert _callback_states(ledger, second.export_id) == ["processed"]
    rows = read_archive(service.store).to_pylist()
    assert rows and len(rows) == second.rows
    assert all(row["content"].endswith(" (edit 1)") for row in rows)
    assert {row["_export_id"] for row in rows} == {second.export_id}
    metrics = httpx.get(f"{service.url}/metrics", timeout=10).text
    assert 'archiver_callbacks_total{outcome="superseded"} 1.0' in metrics


def test_a_lost_callback_is_requested_again_and_the_first_delivery_wins(
    service: RunningService, simulator: str
) -> None:
    ledger = service.ledger
    _faults(simulator, revise_per_request=True, callback_shape="inline-ndjson", drop_callbacks=1)
    _request(service, include_committed=False, rerequest=False)
    _wait(lambda: _requests(simulator) == 1)
    assert _state(ledger) == WindowState.REQUESTED
    lost = ledger.window(STREAM, WINDOW)
    assert lost is not None and lost.export_id is not None

    _request(service, include_committed=False, rerequest=True)
    assert _requests(simulator) == 2
    _wait(lambda: _state(ledger) == WindowState.COMMITTED)
    record = ledger.window(STREAM, WINDOW)
    assert record is not None and record.export_id != lost.export_id
    assert record.attempts == 2
    # The second export's data (edited once) is what was delivered first, so it stands.
    rows = read_archive(service.store).to_pylist()
    assert rows and all(row["content"].endswith(" (edit 1)") for row in rows)


def _requests(simulator: str) -> int:
    snapshot = httpx.get(f"{simulator}/_sim/state", timeout=10).json()
    return int(snapshot["export_requests_accepted"])


def test_a_forced_re_export_that_shrinks_too_much_is_quarantined_until_accepted(
    service: RunningService, simulator: str
) -> None:
    ledger = service.ledger
    # A JSON array: the empty export is `[]`.
    _faults(simulator, callback_shape="inline-json")
    _request(service, include_committed=True, rerequest=False)
    _wait(lambda: _state(ledger) == WindowState.COMMITTED)
    before = ledger.window(STREAM, WINDOW)
    assert before is not None and before.rows
    archived = read_archive(service.store).num_rows

    _faults(simulator, empty_exports=1)
    _request(service, include_committed=True, rerequest=False)
    _wait(lambda: _state(ledger) == WindowState.QUARANTINED)
    record = ledger.window(STREAM, WINDOW)
    assert record is not None and record.reason is not None
    assert f"has 0 rows, the committed window {before.rows}" in record.reason
    assert f"replay --accept-shrink {record.export_id}" in record.reason
    assert read_archive(service.store).num_rows == archived

    assert (
        replay(service.settings, export_id=record.export_id, quarantined=False, accept_shrink=True)
        == 0
    )
    _wait(lambda: _state(ledger) == WindowState.COMMITTED)
    assert read_archive(service.store).num_rows == 0

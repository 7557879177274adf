"""Two replicas on one Postgres ledger. One is paused (SIGSTOP) past its lease while it
processes a window; the other takes the window over, commits it, and then commits a forced
re-export with newer rows. Resumed (SIGCONT), the paused one must write nothing over them: it
gives up the window and says so."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from storage.ledger import ExportAttempt, Ledger
from storage.lifecycle import WindowState
from storage.objectstore import open_store
from storage.schema import STREAM
from tests.harness import ServiceProcess, read_archive, service_env
from tests.receiver.test_recovery import MESSAGES, WINDOW, StallingFile
from tests.servers import free_port, serve_in_thread

LEASE = "6s"


def _attempt(ledger: Ledger, *, forced: bool) -> ExportAttempt:
    ledger.plan(STREAM, [WINDOW])
    # A replica's start-up tick may claim the window first (and fail on its unused upstream);
    # asking again takes it back, as `export` would.
    for _ in range(5):
        ledger.force_due(
            STREAM, [WINDOW], include_committed=forced, rerequest=True, now=datetime.now(UTC)
        )
        claimed = ledger.claim_due(
            STREAM, datetime.now(UTC), limit=1, callback_timeout=timedelta(hours=6), max_attempts=5
        )
        if claimed:
            return claimed[0]
    raise AssertionError("could not claim the window for a test export")


def _until(check: Callable[[], bool], replica: ServiceProcess, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, replica.logs()
        time.sleep(0.05)


def _events(replica: ServiceProcess, event: str) -> list[dict[str, object]]:
    found = []
    for line in replica.log_path.read_text().splitlines():
        if line.startswith("{") and json.loads(line).get("event") == event:
            found.append(json.loads(line))
    return found


def test_a_replica_paused_past_its_lease_gives_up_and_the_newer_rows_stand(
    fresh_postgres_url: str, tmp_path: Path
) -> None:
    files = StallingFile()
    storage_url = f"file://{tmp_path}/archive"
    replicas = [
        ServiceProcess(
            service_env(
                api_url="http://127.0.0.1:9",
                ledger_url=fresh_postgres_url,
                storage_url=storage_url,
                port=free_port(),
                ARCHIVER_LEASE=LEASE,
            ),
            tmp_path / f"replica-{name}.log",
        )
        for name in ("paused", "survivor")
    ]
    paused, survivor = replicas
    ledger = Ledger.open(fresh_postgres_url)
    with serve_in_thread(files.app()) as files_url:
        try:
            paused.start()
            first = _attempt(ledger, forced=False)
            notice = {"status": "completed", "url": f"{files_url}/export.ndjson"}
            url = f"{paused.url}/callbacks/{first.export_id}/{first.token}"
            assert httpx.post(url, json=notice, timeout=30).json()["status"] == "accepted"
            assert files.started.wait(30), paused.logs()
            assert paused.process is not None
            os.kill(paused.process.pid, signal.SIGSTOP)
            try:
                survivor.start()
                # The paused replica is alive, so its lease runs out by time; then the
                # survivor takes the window and downloads the file without a stall.
                _until(lambda: _state(ledger) == WindowState.COMMITTED, survivor)
                newer = [m | {"content": f"{m['content']} (edited)"} for m in MESSAGES]
                second = _attempt(ledger, forced=True)
                body = "".join(json.dumps(m) + "\n" for m in newer)
                url = f"{survivor.url}/callbacks/{second.export_id}/{second.token}"
                answer = httpx.post(url, content=body, timeout=30).json()
                assert answer["status"] == "accepted"
                _until(lambda: _committed_export(ledger) == second.export_id, survivor)
            finally:
                os.kill(paused.process.pid, signal.SIGCONT)
            files.released.set()
            _until(lambda: bool(_events(paused, "window_given_up")), paused)
        finally:
            files.released.set()
            for replica in replicas:
                replica.kill()
            ledger.close()

    rows = read_archive(open_store(storage_url)).to_pylist()
    assert sorted(row["id"] for row in rows) == sorted(str(m["id"]) for m in MESSAGES)
    assert all(row["content"].endswith(" (edited)") for row in rows)
    assert {row["_export_id"] for row in rows} == {second.export_id}
    [given_up] = _events(paused, "window_given_up")
    assert given_up["export_id"] == first.export_id


def _state(ledger: Ledger) -> WindowState | None:
    record = ledger.window(STREAM, WINDOW)
    return record.state if record else None


def _committed_export(ledger: Ledger) -> str | None:
    record = ledger.window(STREAM, WINDOW)
    return record.export_id if record and record.state == WindowState.COMMITTED else None

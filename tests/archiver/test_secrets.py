"""No secret leaves the process: an upstream that echoes the API key and the callback URL (with
its token) in its error answers and failure notices puts neither in the log, `status`,
`status --json`, `check` or the raw metadata."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from scheduler.planner import align_down
from simulator.app import create_app as create_simulator
from storage.ledger import Ledger
from storage.schema import STREAM
from tests.harness import API_KEY, loopback_simulator, running_service, service_env
from tests.servers import free_port, serve_in_thread

HOUR = timedelta(hours=1)
WRONG_KEY = "wrong-key-5f0e1d2c3b4a"


@pytest.fixture
def simulator_url() -> Iterator[str]:
    config = loopback_simulator(
        5,
        240,
        echo_requests=True,
        fail_export_requests={"status": 429, "count": 4, "retry_after": 0},
        failure_notices=1,
    )
    with serve_in_thread(create_simulator(config)) as url:
        yield url


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "archiver.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout + done.stderr


def test_an_upstream_echoing_the_key_and_token_leaks_neither_anywhere(
    tmp_path: Path, simulator_url: str
) -> None:
    start = align_down(datetime.now(UTC), HOUR) - HOUR
    env = service_env(
        api_url=simulator_url,
        ledger_url=f"sqlite:///{tmp_path}/ledger.db",
        storage_url=f"file://{tmp_path}/archive",
        port=free_port(),
        ARCHIVER_WINDOW="1h",
        ARCHIVER_START=start.isoformat(),
        ARCHIVER_MAX_ATTEMPTS="1",
    )
    with running_service(env, tmp_path / "serve.log") as service:
        ledger = Ledger.open(env["ARCHIVER_LEDGER_URL"])
        deadline = time.monotonic() + 60
        while not [w for w in ledger.windows(STREAM) if w.state == "failed"]:
            assert time.monotonic() < deadline, service.logs()
            time.sleep(0.1)
        [window] = ledger.windows(STREAM)
        ledger.close()
        state = httpx.get(f"{simulator_url}/_sim/state").json()
    logs = service.logs(tail=None)

    tokens = {str(entry["callbackUrl"]).rsplit("/", 1)[1] for entry in state["export_requests"]}
    assert len(tokens) == 2  # the deferred request and the accepted one
    # The echoes did happen, and what they carried was masked where it was stored and shown.
    assert window.reason is not None and "***" in window.reason
    assert any("Request: authorization=" in line and "***" in line for line in logs.splitlines())

    status = _cli(env, "status")
    status_json = _cli(env, "status", "--json")
    assert "***" in status and "***" in status_json
    check = _cli(env | {"ARCHIVER_API_KEY": WRONG_KEY}, "check")
    assert "FAIL  API key" in check and "***" in check
    raw_metadata = "".join(
        path.read_text() for path in (tmp_path / "archive" / "_raw").rglob("*.json")
    )
    assert raw_metadata

    outputs = {
        "log": logs,
        "status": status,
        "status --json": status_json,
        "check": check,
        "raw metadata": raw_metadata,
        "ledger reason": window.reason,
    }
    for name, text in outputs.items():
        for secret in (API_KEY, WRONG_KEY, *tokens):
            assert secret not in text, f"{secret[:6]}... appears in {name}"

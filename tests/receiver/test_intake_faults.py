"""Intake when a dependency fails: every failure to look up or store a callback is a 503 with a
reason (the platform retries), counted as `store_error`, and leaves the ledger unchanged."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from storage.layout import Window
from storage.ledger import ExportAttempt, Ledger
from storage.schema import STREAM
from tests.harness import ServiceProcess, service_env
from tests.metrics_text import sample
from tests.servers import TcpProxy, free_port
from tests.service import running_service

WINDOW = Window(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 2, tzinfo=UTC))
STORE_ERRORS = ("archiver_callbacks_total", {"outcome": "store_error"})


def _store_errors(url: str) -> float:
    return sample(url, *STORE_ERRORS) or 0.0


def _requested(ledger: Ledger, window: Window) -> ExportAttempt:
    """The window in state `requested`, as after a request, before the service starts (so the
    service's own start-up tick cannot claim it first)."""
    ledger.plan(STREAM, [window])
    ledger.force_due(STREAM, [window], include_committed=True, now=datetime.now(UTC))
    [attempt] = ledger.claim_due(
        STREAM, datetime.now(UTC), limit=1, callback_timeout=timedelta(hours=6), max_attempts=5
    )
    return attempt


@pytest.fixture
def proxied_postgres(fresh_postgres_url: str) -> Iterator[tuple[str, TcpProxy]]:
    """The test's Postgres database, and a URL for it that goes through a TCP proxy."""
    url = make_url(fresh_postgres_url)
    with TcpProxy(url.port or 5432, url.host or "127.0.0.1") as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port)
        yield proxied.render_as_string(hide_password=False), proxy


def test_a_callback_while_the_ledger_is_down_gets_503_and_changes_nothing(
    tmp_path: Path, fresh_postgres_url: str, proxied_postgres: tuple[str, TcpProxy]
) -> None:
    proxied_url, proxy = proxied_postgres
    with Ledger.open(fresh_postgres_url) as ledger:
        attempt = _requested(ledger, WINDOW)
    with running_service(tmp_path, ledger_url=proxied_url) as service:
        before = _store_errors(service.url)
        proxy.refuse()
        answer = httpx.post(service.callback_url(attempt), content=b'{"data": []}', timeout=15)
        assert answer.status_code == 503
        assert "ledger unavailable" in answer.json()["detail"]
        assert answer.headers["retry-after"]
        assert _store_errors(service.url) == before + 1
        proxy.resume()
    with Ledger.open(fresh_postgres_url) as ledger:
        record = ledger.window(STREAM, WINDOW)
        assert record is not None and record.state == "requested"
        assert ledger.callbacks(attempt.export_id) == []


def _can_mount_a_private_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


@pytest.mark.skipif(
    not _can_mount_a_private_tmpfs(),
    reason="needs `unshare -Urm` to mount a tiny private tmpfs as the full spool disk",
)
def test_a_callback_when_the_spool_disk_is_full_gets_503(tmp_path: Path) -> None:
    """`serve` runs in a private mount namespace whose temporary directory is a 64 KiB tmpfs:
    a real full filesystem (ENOSPC), visible to that process alone."""
    spool = tmp_path / "spool"
    spool.mkdir()
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    port = free_port()
    env = service_env(
        api_url="http://127.0.0.1:9",
        ledger_url=ledger_url,
        storage_url=f"file://{tmp_path / 'archive'}",
        port=port,
        TMPDIR=str(spool),
        ARCHIVER_REQUEST_INTERVAL="1h",
    )
    script = f'mount -t tmpfs -o size=64k tmpfs "{spool}" && exec "$0" -m archiver.cli serve'
    service = ServiceProcess(env, tmp_path / "serve.log")
    service.argv = ["unshare", "-Urm", "sh", "-c", script, sys.executable]
    with Ledger.open(ledger_url) as ledger:
        attempt = _requested(ledger, WINDOW)
        service.start()
        try:
            url = f"{service.url}/callbacks/{attempt.export_id}/{attempt.token}"
            answer = httpx.post(url, content=os.urandom(256 * 1024), timeout=15)
            assert answer.status_code == 503, answer.text
            assert "spool unavailable" in answer.json()["detail"]
            assert _store_errors(service.url) == 1
            assert "No space left on device" in service.logs()
            record = ledger.window(STREAM, WINDOW)
            assert record is not None and record.state == "requested"
            assert ledger.callbacks(attempt.export_id) == []
        finally:
            service.kill()

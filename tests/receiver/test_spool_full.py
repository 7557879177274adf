"""A spool too small for a window: a real small filesystem (tmpfs, mounted for the test) as
`serve`'s TMPDIR. The download or the nested archive stops at the free-space check instead of
filling the disk, is tried again, and the window ends quarantined with what it needs."""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scheduler.planner import align_down
from simulator.app import create_app as create_simulator
from storage.ledger import Ledger, WindowRecord
from storage.schema import STREAM
from tests.harness import loopback_simulator, running_service, service_env
from tests.servers import free_port, serve_in_thread

HOUR = timedelta(hours=1)
SPOOL_MB = 16


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "spool"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SPOOL_MB}m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _bomb() -> bytes:
    """About 100 KB of gzip around a 64 MB stored zip: inside the expansion budget (256 MB),
    four times the spool."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("messages.ndjson", b"\n" * (64 * 1024 * 1024))
    return gzip.compress(inner.getvalue(), compresslevel=9)


FILES = {
    "bomb.gz": (_bomb, "the zip inside the archive"),
    "large.ndjson": (lambda: b"\n" * (24 * 1024 * 1024), "the download needs 24.0 MB"),
}


@pytest.fixture
def file_server() -> Iterator[str]:
    bodies = {name: make() for name, (make, _) in FILES.items()}

    async def serve(request: Request) -> Response:
        return Response(bodies[request.path_params["name"]], media_type="application/octet-stream")

    with serve_in_thread(Starlette(routes=[Route("/{name}", serve)])) as url:
        yield url


class FreeSpaceWatch:
    """The lowest free space the spool had while the test ran, polled in a thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lowest = shutil.disk_usage(path).free
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.lowest = min(self.lowest, shutil.disk_usage(self.path).free)

    def __enter__(self) -> FreeSpaceWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.parametrize("name", sorted(FILES))
def test_a_window_the_spool_cannot_hold_is_quarantined_after_retries_with_what_it_needs(
    tmp_path: Path, spool: Path, file_server: str, name: str
) -> None:
    config = loopback_simulator(3, 24, drop_callbacks=True)
    with serve_in_thread(create_simulator(config)) as simulator_url:
        start = align_down(datetime.now(UTC), HOUR) - HOUR
        env = service_env(
            api_url=simulator_url,
            ledger_url=f"sqlite:///{tmp_path}/ledger.db",
            storage_url=f"file://{tmp_path}/archive",
            port=free_port(),
            ARCHIVER_WINDOW="1h",
            ARCHIVER_START=start.isoformat(),
            ARCHIVER_MAX_ATTEMPTS="3",
            ARCHIVER_WORKER_POLL="1s",
            TMPDIR=str(spool),
        )
        with (
            running_service(env, tmp_path / "serve.log") as service,
            Ledger.open(env["ARCHIVER_LEDGER_URL"]) as ledger,
        ):
            callback_url = _requested_callback(simulator_url)
            with FreeSpaceWatch(spool) as watch:
                notice = {"status": "completed", "url": f"{file_server}/{name}"}
                assert httpx.post(callback_url, json=notice).json() == {"status": "accepted"}
                record = _wait_quarantined(ledger, service.logs)
            logs = service.logs(tail=None)

    reason = record.reason or ""
    assert reason.startswith("spool full: ") and FILES[name][1] in reason
    assert "free" in reason and "tried 3 times" in reason
    assert logs.count('"event": "window_processing_error"') == 2
    assert logs.count('"event": "window_quarantined"') == 1
    assert f"of spool in {spool}, has " in reason
    assert "No space left on device" not in logs
    # The spool never filled: every try stopped above the reserve kept for others.
    assert watch.lowest > SPOOL_MB * 1024 * 1024 // 20
    assert not any(spool.iterdir())


def _requested_callback(simulator_url: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while True:
        requests = httpx.get(f"{simulator_url}/_sim/state").json()["export_requests"]
        accepted = [r for r in requests if r["status"] == 200]
        if accepted:
            return str(accepted[0]["callbackUrl"])
        assert time.monotonic() < deadline, requests
        time.sleep(0.05)


def _wait_quarantined(ledger: Ledger, logs: object, timeout: float = 60) -> WindowRecord:
    deadline = time.monotonic() + timeout
    while True:
        [record] = ledger.windows(STREAM)
        if record.state == "quarantined":
            return record
        assert time.monotonic() < deadline, (record, logs() if callable(logs) else "")
        time.sleep(0.05)

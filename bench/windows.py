"""Many windows through one `chat-archiver serve` process, one after another, with the
process's resident memory after each commit: whether memory stays flat across windows.

Every run is a new export of the same window (the day the export files hold), committed over
the previous one, so each file's rows land in their own window and none is rejected as
outside it.

Used by `bench/intake_memory.py --windows N`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from benchlib import S3_ENV, WINDOW, _wait_committed, _wait_healthy, peak_rss_mb

from archiver.embedded import free_port
from storage.layout import Window
from storage.ledger import ExportAttempt, Ledger
from storage.schema import STREAM


@dataclass(frozen=True)
class WindowRun:
    window: Window
    link: str
    rows: int
    seconds: float
    rss_mb: float
    """VmRSS of `serve` right after the commit."""
    peak_rss_mb: float
    """VmHWM of `serve` so far."""


def _export_again(ledger: Ledger, window: Window) -> ExportAttempt:
    """A new export attempt of `window`, as `export` of a committed window makes one."""
    now = datetime.now(UTC)
    ledger.force_due(STREAM, [window], include_committed=True, now=now)
    [attempt] = ledger.claim_due(
        STREAM, now, limit=1, callback_timeout=timedelta(hours=6), max_attempts=5
    )
    return attempt


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS line")


def run_windows(
    links: list[str],
    *,
    storage_url: str,
    s3_endpoint_url: str | None,
    work_dir: Path,
    timeout: float,
) -> list[WindowRun]:
    """Starts `serve` and sends it one link callback per entry of `links` (a window each),
    each once the previous one is committed."""
    work_dir.mkdir(parents=True, exist_ok=True)
    ledger_url = f"sqlite:///{work_dir}/ledger.db"
    ledger = Ledger.open(ledger_url)
    window = WINDOW
    try:
        ledger.plan(STREAM, [window])
        # Requested before `serve` starts, so its own scheduler finds nothing due to request.
        attempt = _export_again(ledger, window)
        port = free_port()
        env = {
            "PATH": os.environ.get("PATH", ""),
            **S3_ENV,
            "ARCHIVER_API_URL": "http://127.0.0.1:9",
            "ARCHIVER_API_KEY": "bench-key",
            "ARCHIVER_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "ARCHIVER_ALLOW_INSECURE_CALLBACKS": "1",
            "ARCHIVER_DOWNLOAD_ALLOW_PRIVATE": "1",
            "ARCHIVER_PORT": str(port),
            "ARCHIVER_LEDGER_URL": ledger_url,
            "ARCHIVER_STORAGE_URL": storage_url,
            "ARCHIVER_LOG_LEVEL": "WARNING",
            "TMPDIR": str(work_dir),
        }
        if s3_endpoint_url:
            env["ARCHIVER_S3_ENDPOINT_URL"] = s3_endpoint_url
        with (work_dir / "serve.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "archiver.cli", "serve"], env=env, stdout=log, stderr=log
            )
        runs: list[WindowRun] = []
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_healthy(base, process, work_dir)
            for number, link in enumerate(links):
                if number:
                    attempt = _export_again(ledger, window)
                body = json.dumps({"status": "completed", "url": link}).encode()
                answer = httpx.post(
                    f"{base}/callbacks/{attempt.export_id}/{attempt.token}",
                    content=body,
                    headers={"content-type": "application/json"},
                    timeout=30,
                )
                if answer.status_code != 200:
                    raise RuntimeError(f"the callback got {answer.status_code}: {answer.text}")
                record = _wait_committed(ledger, window, process, work_dir, timeout)
                [callback] = ledger.callbacks(attempt.export_id)
                assert record.committed_at is not None
                seconds = (record.committed_at - callback.received_at).total_seconds()
                run = WindowRun(
                    window,
                    link,
                    record.rows or 0,
                    seconds,
                    rss_mb(process.pid),
                    peak_rss_mb(process.pid),
                )
                runs.append(run)
                print(
                    f"window {number + 1}/{len(links)}: {run.rows} rows in {seconds:.1f}s, "
                    f"RSS {run.rss_mb:.0f} MB, peak {run.peak_rss_mb:.0f} MB",
                    file=sys.stderr,
                )
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return runs
    finally:
        ledger.close()

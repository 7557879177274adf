"""Many windows through one `chat-archiver serve` process, one after another, with the
process's resident memory after each commit: whether memory stays flat across windows.

Every run is a new export of the same window (the day the export files hold), committed over
the previous one, so each file's rows land in their own window and none is rejected as
outside it.

Used by `bench/intake_memory.py --windows N`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
from benchlib import (
    WINDOW,
    _wait_committed,
    _wait_healthy,
    export_now,
    peak_rss_mb,
    serve_env,
    start_serve,
    stop_process,
)

from archiver.embedded import free_port
from storage.layout import Window
from storage.ledger import Ledger
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
        [attempt] = export_now(ledger, [window]).values()
        port = free_port()
        env = serve_env(port, ledger_url, storage_url, s3_endpoint_url, work_dir, "WARNING")
        process = start_serve(env, work_dir)
        runs: list[WindowRun] = []
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_healthy(base, process, work_dir)
            for number, link in enumerate(links):
                if number:
                    [attempt] = export_now(ledger, [window]).values()
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
            stop_process(process)
        return runs
    finally:
        ledger.close()

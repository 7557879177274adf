"""What both benchmarks share: the export file, the S3 endpoint, the link server and the
service itself, run as `chat-archiver serve` in a subprocess exactly as in production.

The export file is made once per size from the simulator's corpus and file writer (the bytes
the simulator would serve) and kept in the data directory, so every contender reads the same
file and a second run skips the generation.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from archiver.embedded import free_port, running
from simulator.corpus import MessageCorpus
from simulator.files import write_export
from storage.layout import Window
from storage.ledger import ExportAttempt, Ledger, WindowRecord
from storage.lifecycle import PROBLEMS, WindowState
from storage.schema import STREAM

SEED = 7
# A fixed day in the past: one window of one day holds all of a run's messages.
DAY = datetime(2025, 3, 3, tzinfo=UTC)
WINDOW = Window(DAY, DAY + timedelta(days=1))
# A long-running service has its code paths, thread pools and connections warm; a fresh
# process is first given this small window, and only then the one that is measured.
WARMUP_WINDOW = Window(DAY - timedelta(days=1), DAY)
WARMUP_MESSAGES = 2000
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
MB = 1024 * 1024


def default_data_dir() -> Path:
    return Path(tempfile.gettempdir()) / "chat-archiver-bench"


def export_file(
    data_dir: Path, messages: int, shape: str = "link-ndjson-gz", window: Window = WINDOW
) -> Path:
    """The simulator's export of `messages` messages in `window`, written once and reused."""
    suffix = {"link-ndjson-gz": ".ndjson.gz", "inline-ndjson": ".ndjson"}[shape]
    day = window.start.strftime("%Y%m%d")
    path = data_dir / f"messages-{SEED}-{day}-{messages}{suffix}"
    if path.exists():
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    started = time.perf_counter()
    corpus = MessageCorpus(SEED, messages)
    written = write_export(partial, corpus.between(window.start, window.end), shape)
    if written != messages:
        raise RuntimeError(f"the corpus gave {written} messages, not {messages}")
    partial.rename(path)
    seconds = time.perf_counter() - started
    print(
        f"generated {path} ({messages} messages, {path.stat().st_size / MB:.1f} MB) "
        f"in {seconds:.1f}s",
        file=sys.stderr,
    )
    return path


def warmup_file(data_dir: Path) -> Path:
    """A small export for WARMUP_WINDOW, processed before anything is measured."""
    return export_file(data_dir, WARMUP_MESSAGES, window=WARMUP_WINDOW)


@contextmanager
def serve_app(app: Starlette) -> Iterator[str]:
    """An ASGI app under uvicorn in a thread of this process; yields its base URL."""
    port = free_port()
    with running(app, "127.0.0.1", port):
        yield f"http://127.0.0.1:{port}"


class _FileResponse(FileResponse):
    # Starlette sends 64 KiB at a time; a file host (S3, a CDN) streams faster than that.
    chunk_size = 1024 * 1024


@contextmanager
def link_server(directory: Path) -> Iterator[str]:
    """Serves the files of `directory` under /files/, as the platform's download links."""

    async def download(request: Request) -> Response:
        path = directory / request.path_params["name"]
        if "/" in request.path_params["name"] or not path.is_file():
            return Response(status_code=404)
        return _FileResponse(path, media_type="application/octet-stream")

    with serve_app(Starlette(routes=[Route("/files/{name}", download)])) as url:
        yield f"{url}/files"


@contextmanager
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a loopback port, in a thread of this process."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    for name, value in S3_ENV.items():
        os.environ.setdefault(name, value)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def create_bucket(endpoint: str, name: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)


def peak_rss_mb(pid: int | str = "self") -> float:
    """The process's peak resident set (VmHWM) in MiB; read before the process exits."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmHWM line")


@dataclass(frozen=True)
class ServiceRun:
    rows: int
    rejects: int
    seconds: float
    """From the callback's arrival (its received_at) to the window's committed_at."""
    peak_rss_mb: float
    """VmHWM of the `serve` process, read once the window is committed."""
    manifest_key: str


def percentile_ms(latencies: Sequence[float], q: float) -> float:
    """The `q` quantile of latencies given in seconds, in milliseconds; NaN if there are none."""
    if not latencies:
        return float("nan")
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def export_now(ledger: Ledger, windows: list[Window]) -> dict[Window, ExportAttempt]:
    """A new export attempt of each window (committed or not), as `export` makes them."""
    now = datetime.now(UTC)
    ledger.force_due(STREAM, windows, include_committed=True, now=now)
    attempts = ledger.claim_due(
        STREAM, now, limit=len(windows), callback_timeout=timedelta(hours=6), max_attempts=5
    )
    return {attempt.window: attempt for attempt in attempts}


def serve_env(
    port: int,
    ledger_url: str,
    storage_url: str,
    s3_endpoint_url: str | None,
    work_dir: Path,
    log_level: str = "INFO",
) -> dict[str, str]:
    """The environment of a `serve` that is only sent callbacks: it never reaches an API."""
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
        "ARCHIVER_LOG_LEVEL": log_level,
        "TMPDIR": str(work_dir),
    }
    if s3_endpoint_url:
        env["ARCHIVER_S3_ENDPOINT_URL"] = s3_endpoint_url
    return env


def start_serve(env: dict[str, str], work_dir: Path) -> subprocess.Popen[bytes]:
    """`chat-archiver serve` as a subprocess, its output in `work_dir/serve.log`."""
    with (work_dir / "serve.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "archiver.cli", "serve"], env=env, stdout=log, stderr=log
        )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, as an orchestrator stops a service; SIGKILL after 30 s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_service(
    *,
    link: str,
    warmup_link: str,
    storage_url: str,
    s3_endpoint_url: str | None,
    work_dir: Path,
    timeout: float,
    extra_env: dict[str, str] | None = None,
) -> ServiceRun:
    """Starts `chat-archiver serve`, has it archive WARMUP_WINDOW from `warmup_link`, then
    WINDOW from `link` (a link callback each), and returns what the second took. The
    service's log is kept in `work_dir/serve.log`."""
    work_dir.mkdir(parents=True, exist_ok=True)
    ledger_url = f"sqlite:///{work_dir}/ledger.db"
    ledger = Ledger.open(ledger_url)
    try:
        windows = [WARMUP_WINDOW, WINDOW]
        ledger.plan(STREAM, windows)
        by_window = export_now(ledger, windows)
        port = free_port()
        env = serve_env(port, ledger_url, storage_url, s3_endpoint_url, work_dir)
        env.update(extra_env or {})
        process = start_serve(env, work_dir)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_healthy(base, process, work_dir)
            for window, url in ((WARMUP_WINDOW, warmup_link), (WINDOW, link)):
                attempt = by_window[window]
                body = json.dumps({"status": "completed", "url": url}).encode()
                answer = httpx.post(
                    f"{base}/callbacks/{attempt.export_id}/{attempt.token}",
                    content=body,
                    headers={"content-type": "application/json"},
                    timeout=30,
                )
                if answer.status_code != 200:
                    raise RuntimeError(f"the callback got {answer.status_code}: {answer.text}")
                record = _wait_committed(ledger, window, process, work_dir, timeout)
            peak = peak_rss_mb(process.pid)
        finally:
            stop_process(process)
        [callback] = ledger.callbacks(by_window[WINDOW].export_id)
        assert record.committed_at is not None and record.manifest_key is not None
        return ServiceRun(
            rows=record.rows or 0,
            rejects=record.rejects or 0,
            seconds=(record.committed_at - callback.received_at).total_seconds(),
            peak_rss_mb=peak,
            manifest_key=record.manifest_key,
        )
    finally:
        ledger.close()


def _wait_healthy(base: str, process: subprocess.Popen[bytes], work_dir: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"serve exited {process.returncode}: {_tail(work_dir)}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"serve did not come up: {_tail(work_dir)}")
        time.sleep(0.1)


def _wait_committed(
    ledger: Ledger,
    window: Window,
    process: subprocess.Popen[bytes],
    work_dir: Path,
    timeout: float,
) -> WindowRecord:
    deadline = time.monotonic() + timeout
    while True:
        record = ledger.window(STREAM, window)
        if record is not None and record.state == "committed":
            return record
        if record is not None and record.state in (*PROBLEMS, WindowState.PLANNED):
            raise RuntimeError(f"the window ended {record.state}: {record.reason}")
        if process.poll() is not None:
            raise RuntimeError(f"serve exited {process.returncode}: {_tail(work_dir)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no commit within {timeout:.0f}s: {_tail(work_dir)}")
        time.sleep(0.05)


def _tail(work_dir: Path) -> str:
    path = work_dir / "serve.log"
    return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"


def exit_status(missed: Sequence[str]) -> int:
    """Names each missed target on stderr; a benchmark's exit status, 1 if any was missed."""
    for line in missed:
        print(f"target missed: {line}", file=sys.stderr)
    return 1 if missed else 0


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain, right-aligned text table."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for line in [header, ["-" * width for width in widths], *rows]:
        print("  ".join(str(cell).rjust(width) for cell, width in zip(line, widths, strict=True)))
